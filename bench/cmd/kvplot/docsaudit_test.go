package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsauditOutputFormats: kvplot frag draws a PNG (its doc says so);
// given a name that promises another format it used to write PNG bytes
// into it and exit 0. It is now a bad flag (exit 2) and writes nothing.
func TestDocsauditOutputFormats(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"frag.svg", "frag.pdf", "frag"} {
		out := filepath.Join(dir, name)
		var errb bytes.Buffer
		if code := run([]string{"frag", "-o", out}, strings.NewReader(fragJSON), &errb); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errb.String())
		}
		if !strings.Contains(errb.String(), ".png") {
			t.Errorf("%s: the error %q does not say what it wants", name, errb.String())
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: written anyway (%v)", name, err)
		}
	}
	var errb bytes.Buffer
	if code := run([]string{"frag", "-o", filepath.Join(dir, "frag.PNG")}, strings.NewReader(fragJSON), &errb); code != 0 {
		t.Errorf("frag.PNG: exit %d: %s", code, errb.String())
	}

	// The other kinds take the formats gonum/plot writes; another name is
	// a bad flag too (it was exit 1 after creating an empty file).
	out := filepath.Join(dir, "cache.txt")
	errb.Reset()
	if code := run([]string{"cache", "-o", out}, strings.NewReader(cacheJSON), &errb); code != 2 {
		t.Errorf("cache.txt: exit %d, want 2 (%s)", code, errb.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("cache.txt: created anyway (%v)", err)
	}
	errb.Reset()
	if code := run([]string{"cache", "-o", filepath.Join(dir, "cache.pdf")}, strings.NewReader(cacheJSON), &errb); code != 0 {
		t.Errorf("cache.pdf: exit %d: %s", code, errb.String())
	}
}
