package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProgressLine(t *testing.T) {
	p := &progress{what: "frag", unit: "requests", total: 400}
	assert.Equal(t, "frag: 0/400 requests (0%), 0s elapsed, ETA -", p.line(0, 0))
	assert.Equal(t, "frag: 100/400 requests (25%), 3s elapsed, ETA 9s", p.line(100, 3*time.Second))
	assert.Equal(t, "frag: 400/400 requests (100%), 8s elapsed, ETA 0s", p.line(500, 8*time.Second))
	p.SetPhase("sharing")
	assert.Equal(t, "frag (sharing): 200/400 requests (50%), 1s elapsed, ETA 1s", p.line(200, time.Second))
}

// Progress is drawn only on a terminal: not into a buffer, a pipe or
// /dev/null (a character device, but no terminal), and never with -json.
func TestProgressOnlyOnTerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer devNull.Close()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	for _, out := range []io.Writer{&bytes.Buffer{}, devNull, w} {
		assert.Nil(t, startProgress(out, false, "x", "units", 10), "%T", out)
	}
	// A nil progress ignores every call.
	var p *progress
	p.Add(1)
	p.SetPhase("y")
	p.Stop()
}

// lockedBuffer is a bytes.Buffer safe for the progress goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// withTerminal makes every writer count as a terminal for the test.
func withTerminal(t *testing.T) {
	saved := terminal
	terminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { terminal = saved })
}

// TestProgressShown runs the long commands as if on a terminal: each draws
// its progress on stderr and ends with its total time; -json draws nothing.
func TestProgressShown(t *testing.T) {
	withTerminal(t)
	for _, args := range [][]string{
		{"frag", "-requests", "300", "-sharing-requests", "40"},
		append([]string{"quant", "-types", "fp16,kivi-int2-g32"}, smallQuant...),
		{"cache", "-policies", "lru,belady", "-capacity-tokens", "512000"},
		{"overhead", "-repeat", "2", "-requests", "200"},
	} {
		var errb lockedBuffer
		require.Equal(t, 0, run(args, io.Discard, &errb), args)
		s := errb.String()
		assert.Equal(t, 1, strings.Count(s, args[0]+": done in"), "%v: %q", args, s)
		assert.True(t, strings.HasPrefix(s, "\r\x1b[K"), "%v: %q", args, s)
		var json lockedBuffer
		require.Equal(t, 0, run(append(args, "-json"), io.Discard, &json), args)
		assert.Empty(t, json.String(), args)
	}
}
