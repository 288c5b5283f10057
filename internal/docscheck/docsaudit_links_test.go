package docscheck

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`^#+\s+(.*)$`)
	mdMention = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]+\.md\b`)
	notAnchor = regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
)

// anchors returns the heading anchors of a Markdown file as GitHub makes
// them: lowercase, punctuation dropped, spaces turned into hyphens.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	fenced := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if m := mdHeading.FindStringSubmatch(line); m != nil && !fenced {
			h := notAnchor.ReplaceAllString(strings.ToLower(strings.TrimSpace(m[1])), "")
			out[strings.ReplaceAll(h, " ", "-")] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// outsideMentions are mentions of files outside the repository (the
// project's shared notes) in docs this test's author did not own; their
// owners are to replace them (docs/workloads.md now holds WORKLOADS.md's
// content). Remove an entry once its mention is gone.
var outsideMentions = map[string]bool{}

// TestDocsLinksResolve: every relative link of README.md and docs/*.md
// names a file of the repository and, with a #fragment, one of its
// headings; and every Markdown file the text names (WORKLOADS.md, say)
// is in the repository, so a fresh clone has what the docs send a reader
// to.
func TestDocsLinksResolve(t *testing.T) {
	root := moduleRoot(t)
	mdFiles := map[string]bool{} // base names of the repository's Markdown files
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			mdFiles[d.Name()] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, d := range readDocs(t) {
		file, text, name := d.path, d.text, d.name
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			links++
			path, frag, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %q: %v", name, link, err)
				continue
			}
			if frag != "" && strings.HasSuffix(target, ".md") && !anchors(t, target)[frag] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", name, link, filepath.Base(target), frag)
			}
		}
		for _, mention := range mdMention.FindAllString(fence.ReplaceAllString(text, ""), -1) {
			if !mdFiles[filepath.Base(mention)] && !outsideMentions[name+":"+mention] {
				t.Errorf("%s: names %s, which is not in the repository", name, mention)
			}
		}
	}
	if links < 20 {
		t.Fatalf("found %d relative links in the docs; the extraction is broken", links)
	}
}
