package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit101Messages: every refusal of the command line says what is
// wrong once, on stderr, and prints nothing on stdout. "kvbench -h NAME"
// is refused as "kvbench help NAME QUANT" is (only "help" takes a name);
// a flag the flag package refuses is reported by it alone (not again by
// run); a stray argument is named; an unknown command is named.
func TestAudit101Messages(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // on stderr, exactly once
	}{
		{[]string{"-h", "plan"}, `kvbench: -h takes at most one command name, got ["plan"]`},
		{[]string{"--help", "plan"}, `kvbench: --help takes at most one command name, got ["plan"]`},
		{[]string{"plan", "-no-such-flag"}, "flag provided but not defined: -no-such-flag\n"},
		{[]string{"plan", "-gpus", "x"}, `invalid value "x" for flag -gpus`},
		{[]string{"plan", "-gpus", "0"}, "kvbench plan: "},
		{[]string{"plan", "stray", "more"}, "kvbench plan: unexpected argument \"stray\"\nrun \"kvbench plan -h\" for the flags\n"},
		{[]string{"nope"}, "kvbench: unknown command \"nope\"\n"},
	} {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, run(tt.args, &out, &errb), "%q", tt.args)
		assert.Empty(t, out.String(), "%q", tt.args)
		assert.Equal(t, 1, strings.Count(errb.String(), tt.want), "%q: %s", tt.args, errb.String())
	}
}

// TestAudit101HeapProfileUnwritable: a -memprofile that cannot be written
// fails the run (exit 1, with the path), as an unwritable -cpuprofile
// does, though the study itself went well: the user asked for a file and
// did not get it.
func TestAudit101HeapProfileUnwritable(t *testing.T) {
	mem := filepath.Join(t.TempDir(), "no", "such", "dir", "mem.prof")
	var out, errb bytes.Buffer
	assert.Equal(t, 1, run([]string{"plan", "-memprofile", mem}, &out, &errb))
	assert.Contains(t, errb.String(), mem)
	assert.NotEmpty(t, out.String(), "the study ran")
	// The failure does not stay behind for the next command.
	assert.Equal(t, 0, run([]string{"plan"}, &bytes.Buffer{}, &bytes.Buffer{}))
}

// TestAudit101ProgressLineRounds: the line gives whole seconds for the
// time spent and the time left, whatever the clock's precision.
func TestAudit101ProgressLineRounds(t *testing.T) {
	p := &progress{what: "cache", unit: "replays", total: 400}
	// 3.4 s for a quarter: 10.2 s left.
	assert.Equal(t, "cache: 100/400 replays (25%), 3s elapsed, ETA 10s", p.line(100, 3400*time.Millisecond))
	assert.Equal(t, "cache: 300/400 replays (75%), 2m1s elapsed, ETA 40s", p.line(300, 121*time.Second+300*time.Millisecond))
}

// TestAudit101ProgressOnATerminal: on a terminal a run of no units draws
// nothing; a run draws its count within a few redraw intervals, and Stop,
// called twice as a command may (deferred and before printing), ends the
// line once with the total time in tenths of a second.
func TestAudit101ProgressOnATerminal(t *testing.T) {
	withTerminal(t)
	assert.Nil(t, startProgress(&lockedBuffer{}, false, "x", "units", 0))

	var b lockedBuffer
	p := startProgress(&b, false, "x", "units", 10)
	require.NotNil(t, p)
	p.Add(2)
	p.Add(1)
	// Generous: a loaded CI machine may starve the ticker for a while;
	// the loop ends as soon as the line is drawn.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.String(), "\r\x1b[Kx: 3/10 units (30%), ") && time.Now().Before(deadline) {
		time.Sleep(progressInterval / 10)
	}
	assert.Contains(t, b.String(), "\r\x1b[Kx: 3/10 units (30%), ", "no line drawn in 30s")
	assert.NotPanics(t, func() {
		p.Stop()
		p.Stop()
	})
	s := b.String()
	assert.Equal(t, 1, strings.Count(s, "x: done in"), "%q", s)
	assert.Regexp(t, regexp.MustCompile(`\r\x1b\[Kx: done in (0s|[1-9]00ms|[0-9]+(\.[0-9])?s)\n$`), s)
}
