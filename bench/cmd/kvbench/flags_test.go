package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench"
)

// TestCommandsShareOneStyle: every command prints the same usage header
// with its description and example for -h (exit 0), exits 2 on an unknown
// flag or a stray argument, and takes -cpuprofile and -memprofile.
func TestCommandsShareOneStyle(t *testing.T) {
	for _, c := range commands {
		var errb bytes.Buffer
		require.Equal(t, 0, run([]string{c.name, "-h"}, &bytes.Buffer{}, &errb), c.name)
		h := errb.String()
		assert.True(t, strings.HasPrefix(h, "usage: kvbench "+c.name+" [flags]\n\n"+c.summary+"\n\nexample:\n  "+c.example+"\n\nflags:\n"), "%s: %q", c.name, h)
		for _, f := range []string{"-cpuprofile", "-memprofile"} {
			assert.Contains(t, h, f, c.name)
		}
		assert.True(t, strings.HasPrefix(c.example, "kvbench "+c.name+" "), c.example)
		assert.Equal(t, 2, run([]string{c.name, "-no-such-flag"}, &bytes.Buffer{}, &bytes.Buffer{}), c.name)
		assert.Equal(t, 2, run([]string{c.name, "stray"}, &bytes.Buffer{}, &bytes.Buffer{}), c.name)
	}
	assert.Equal(t, 2, run(nil, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.Equal(t, 0, run([]string{"-h"}, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.Equal(t, 2, run([]string{"nope"}, &bytes.Buffer{}, &bytes.Buffer{}))
}

func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	var errb bytes.Buffer
	require.Equal(t, 0, run([]string{"plan", "-cpuprofile", cpu, "-memprofile", mem}, &bytes.Buffer{}, &errb), errb.String())
	for _, p := range []string{cpu, mem} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Positive(t, st.Size(), p)
	}
	assert.Equal(t, 1, run([]string{"plan", "-cpuprofile", filepath.Join(dir, "no", "such", "dir")}, &bytes.Buffer{}, &bytes.Buffer{}))
}

// TestBadFlagValuesExit2: a flag value out of range is a usage error too.
func TestBadFlagValuesExit2(t *testing.T) {
	for _, args := range [][]string{
		{"overhead", "-repeat", "0"},
		{"overhead", "-window", "-1"},
		{"overhead", "-hasher", "md5"},
		{"plan", "-gpus", "0"},
		{"cache", "-capacity-tokens", "-5"},
		{"cache", "-format", "csv"},
		{"fleet", "-servers", "0", "-redis", ""},
		{"fleet", "-shared-prefix", "-1", "-redis", ""},
		{"fleet", "-speed", "0", "-redis", ""},
		{"fleet", "-speed", "-1", "-redis", ""},
		{"fleet", "-speed", "NaN", "-redis", ""},
		{"fleet", "-speed", "+Inf", "-redis", ""},
		{"overhead", "-blocks", "1"},
		{"overhead", "-policy", "zz"},
	} {
		assert.Equal(t, 2, run(args, &bytes.Buffer{}, &bytes.Buffer{}), "%v", args)
	}
}

// TestHugeFlagValuesDoNotPanic: flag values too large for what they size
// (a preallocation, a shared prefix, a state group) are usage errors; they
// used to crash kvbench with "makeslice: cap out of range".
func TestHugeFlagValuesDoNotPanic(t *testing.T) {
	huge := strconv.Itoa(math.MaxInt)
	for _, args := range [][]string{
		{"fleet", "-redis", "", "-requests", "2", "-shared-prefix", huge},
		{"fleet", "-redis", "", "-requests", "2", "-shared-prefix", strconv.Itoa(bench.MaxTraceTokens/bench.MooncakeBlockSize + 1)},
		{"fleet", "-redis", "", "-requests", "2", "-shared-prefix", strconv.Itoa(bench.MaxTraceTokens / bench.MooncakeBlockSize)}, // no token left of a prompt's own
		{"overhead", "-requests", "2", "-repeat", huge},
		{"overhead", "-requests", "2", "-state", huge},
		{"overhead", "-requests", "2", "-blocks", "64", "-state", "64"},
	} {
		var stderr bytes.Buffer
		assert.NotPanics(t, func() {
			assert.Equal(t, 2, run(args, &bytes.Buffer{}, &stderr), "%v: %s", args, stderr.String())
		}, "%v", args)
	}
}
