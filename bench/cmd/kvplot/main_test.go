package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fragJSON = `{"study":"frag","model":"oracle","allocator":"buddy","block_size":0,"token_states":0.6,"reserved":0.1,"internal":0,"external":0.29,"free":0.01}
{"study":"frag","model":"oracle","allocator":"compact","block_size":0,"token_states":0.7,"reserved":0.1,"internal":0,"external":0,"free":0.2}
{"study":"frag","model":"paged","block_size":16,"token_states":0.95,"reserved":0.006,"internal":0,"external":0,"free":0.044}
{"study":"sharing","mode":"beam","width":2,"saved":0.5}
`

const cacheJSON = `{"policy":"lru","capacity_tokens":512000,"hit_rate":0.08,"max_hit_rate":0.64}
{"policy":"lru","capacity_tokens":3000000,"hit_rate":0.31,"max_hit_rate":0.64}
{"policy":"belady","capacity_tokens":512000,"hit_rate":0.27,"max_hit_rate":0.64}
{"policy":"belady","capacity_tokens":3000000,"hit_rate":0.55,"max_hit_rate":0.64}
`

const quantJSON = `[{"type":"fp16","bytes_per_token":131072,"errors":[{"context":1024,"mean_rel_err":0.001},{"context":4096,"mean_rel_err":0.002}]},
{"type":"q4_0","bytes_per_token":36864,"errors":[{"context":1024,"mean_rel_err":0.4},{"context":4096,"mean_rel_err":0.42}]}]`

func TestKinds(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ kind, in, file string }{
		{"frag", fragJSON, "frag.png"},
		{"cache", cacheJSON, "cache.svg"},
		{"quant", quantJSON, "quant.png"},
	} {
		out := filepath.Join(dir, tt.file)
		var errb bytes.Buffer
		if code := run([]string{tt.kind, "-o", out}, strings.NewReader(tt.in), &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", tt.kind, code, errb.String())
		}
		b, err := os.ReadFile(out)
		if err != nil || len(b) < 100 {
			t.Fatalf("%s: %d bytes, %v", tt.kind, len(b), err)
		}
		if strings.HasSuffix(tt.file, ".png") && !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s: not a PNG", tt.kind)
		}
	}
}

func TestBadInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.png")
	for _, tt := range []struct {
		args []string
		in   string
		code int
	}{
		{[]string{"-h"}, "", 0},
		{[]string{"frag", "-h"}, "", 0},
		{nil, "", 2},
		{[]string{"pie", "-o", out}, fragJSON, 2},
		{[]string{"frag"}, fragJSON, 2},
		{[]string{"frag", "-o", out, "-bad"}, fragJSON, 2},
		{[]string{"frag", "-o", out}, "{", 2},
		{[]string{"frag", "-o", out}, `{"study":"frag","model":"lru"}`, 2},
		{[]string{"frag", "-o", out}, "", 2},
		{[]string{"quant", "-o", out}, "[]x", 2},
		{[]string{"quant", "-o", out, "-context", "7"}, quantJSON, 2},
		{[]string{"cache", "-o", out}, "", 1},
		{[]string{"frag", "-o", filepath.Join(out, "missing", "f.png")}, fragJSON, 1},
	} {
		if code := run(tt.args, strings.NewReader(tt.in), &bytes.Buffer{}); code != tt.code {
			t.Errorf("%v on %q: exit %d, want %d", tt.args, tt.in, code, tt.code)
		}
	}
}
