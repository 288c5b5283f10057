package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/bench"
)

// The hundred-and-third round of mutation testing (docs/testing.md).

// TestAudit151LineTooLong: a line longer than the scanner's 16 MiB is an
// error, not the end of the input (the rows before it alone drawn).
func TestAudit151LineTooLong(t *testing.T) {
	first := strings.SplitN(cacheJSON, "\n", 2)[0]
	in := first + "\n" + strings.Repeat(" ", 1<<24) + first + "\n"
	var n int
	err := jsonLines([]byte(in), func([]byte) error { n++; return nil })
	if !errors.Is(err, bufio.ErrTooLong) || n != 1 {
		t.Errorf("jsonLines over a 16 MiB line: %d lines, %v", n, err)
	}
	var errb bytes.Buffer
	out := filepath.Join(t.TempDir(), "cache.png")
	if code := run([]string{"cache", "-o", out}, strings.NewReader(in), &errb); code != 1 || !strings.Contains(errb.String(), "too long") {
		t.Errorf("cache over a 16 MiB line: exit %d, %q", code, errb.String())
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("cache over a 16 MiB line: drawn anyway (%v)", err)
	}
}

// TestAudit151FragReadBack: each frag row keeps its allocator (an unknown
// one refused) and its reserved and free shares apart.
func TestAudit151FragReadBack(t *testing.T) {
	rs, err := readFrag([]byte(`{"study":"frag","model":"oracle","allocator":"compact","block_size":0,"token_states":0.5,"reserved":0.1,"internal":0,"external":0.15,"free":0.25}
{"study":"frag","model":"oracle","allocator":"first-fit","block_size":0,"token_states":0.6,"reserved":0.2,"internal":0,"external":0.1,"free":0.1}
`))
	if err != nil || len(rs) != 2 {
		t.Fatalf("frag read back %+v, %v", rs, err)
	}
	for i, want := range []struct {
		a              bench.Allocator
		reserved, free float64
	}{{bench.AllocCompact, 0.1, 0.25}, {bench.AllocFirstFit, 0.2, 0.1}} {
		if r := rs[i]; r.Allocator != want.a || r.Reserved != want.reserved || r.Free != want.free {
			t.Errorf("row %d read back %+v", i, r)
		}
	}
	if _, err := readFrag([]byte(`{"study":"frag","model":"oracle","allocator":"lru"}`)); err == nil {
		t.Error("an unknown allocator taken")
	}
}
