package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestEveryMutationApplies keeps the list in step with the sources: a
// change to a mutated line leaves its mutation naming a line that is no
// longer there (or there twice), which only a run of the runner would
// otherwise find. Every mutation must apply to exactly the line it names
// and change it.
func TestEveryMutationApplies(t *testing.T) {
	muts, err := parse("mutations.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(muts) == 0 {
		t.Fatal("mutations.txt lists no mutation")
	}
	root := filepath.Join("..", "..")
	srcs := map[string][]byte{}
	for _, mu := range muts {
		src, ok := srcs[mu.file]
		if !ok {
			if src, err = os.ReadFile(filepath.Join(root, mu.file)); err != nil {
				t.Errorf("%s: %v", mu.id, err)
				continue
			}
			srcs[mu.file] = src
		}
		got, line, err := apply(src, mu)
		if err != nil {
			t.Errorf("%s: %v", mu.id, err)
			continue
		}
		if bytes.Equal(got, src) {
			t.Errorf("%s: %s:%d is unchanged by the mutation", mu.id, mu.file, line)
		}
	}
}
