package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDocsauditBadFlagValuesExit2: the package doc promises exit code 2
// for bad flags. An unknown -policies name of kvbench cache and a
// -state-models name that is no preset of full-attention and state layers
// exited 1, as if the run had failed; they are bad flag values, refused
// before anything runs.
func TestDocsauditBadFlagValuesExit2(t *testing.T) {
	for _, args := range [][]string{
		{"cache", "-policies", "lruu"},
		{"cache", "-policies", ""},
		{"hybrid", "-state-models", "nope"},
		{"hybrid", "-state-models", "gemma-3-27b"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
		if !strings.Contains(errb.String(), args[1]) {
			t.Errorf("%q: the error does not name the flag: %s", args, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed %d bytes before refusing", args, out.Len())
		}
	}
}
