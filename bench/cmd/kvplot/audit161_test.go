package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// a161Window is one good kvbench hybrid -json window line.
const a161Window = `{"blocks":8192,"requests":2000,"window":128,"w1_vllm_admitted_hit_tokens":756976,"w1_default_admitted_hit_tokens":761904,"vllm_admitted_hit_tokens":147744}`

// TestAudit161HybridLineThatDoesNotDecodeIsRefused: a line whose field
// has the wrong type (a quoted count) is refused, not taken with the
// fields that did decode (json.Unmarshal fills the others before it
// reports the type error).
func TestAudit161HybridLineThatDoesNotDecodeIsRefused(t *testing.T) {
	if _, err := readHybrid([]byte(a161Window + "\n")); err != nil {
		t.Fatalf("a good line refused: %v", err)
	}
	bad := strings.Replace(a161Window, `"vllm_admitted_hit_tokens":147744`, `"vllm_admitted_hit_tokens":"147744"`, 1)
	r, err := readHybrid([]byte(a161Window + "\n" + bad + "\n"))
	if !errors.Is(err, errInput) {
		t.Fatalf("a line with a string for a count: %v, rows %+v", err, r.Rows)
	}
}

// TestAudit161HybridNegativeWindowRefused: a line with a negative window
// is refused (exit 2). It counted as the line's one kind but is no
// window row, so it fell through to a state row with no model.
func TestAudit161HybridNegativeWindowRefused(t *testing.T) {
	in := a161Window + "\n" + `{"blocks":8192,"requests":2000,"window":-128,"w1_vllm_admitted_hit_tokens":756976}` + "\n"
	r, err := readHybrid([]byte(in))
	if !errors.Is(err, errInput) {
		t.Fatalf("a negative window: %v, states %+v", err, r.States)
	}
	var errb bytes.Buffer
	if code := run([]string{"hybrid", "-o", filepath.Join(t.TempDir(), "h.png")}, strings.NewReader(in), &errb); code != 2 {
		t.Fatalf("exit %d (%s), want 2", code, errb.String())
	}
}
