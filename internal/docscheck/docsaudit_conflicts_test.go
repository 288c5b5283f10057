package docscheck

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoMergeConflictMarkers: no Markdown, Go or CI file of the
// repository holds a line git writes around a merge conflict it leaves to
// a person ("<<<<<<< ours", ">>>>>>> theirs"). Session 14's merge of
// soakrest left both sides of a paragraph of docs/sched.md, markers
// included, and every other docs test passed: each reads the names and
// links, not the prose around them.
func TestNoMergeConflictMarkers(t *testing.T) {
	root := moduleRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") && name != ".ci" || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".md" && ext != ".go" && !strings.HasPrefix(path, filepath.Join(root, ".ci")+string(filepath.Separator)) {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<24)
		for line := 1; sc.Scan(); line++ {
			if s := sc.Text(); strings.HasPrefix(s, "<<<<<<< ") || strings.HasPrefix(s, ">>>>>>> ") || s == "<<<<<<<" || s == ">>>>>>>" {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: merge conflict marker %q", rel, line, s)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}
