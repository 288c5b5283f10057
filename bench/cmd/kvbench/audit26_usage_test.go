package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit26Usage: kvbench without a command is a usage error (status 2,
// the usage with every command on stderr, nothing on stdout), as the go
// command's; "kvbench help" and -h ask for it (status 0, on stdout, so it
// pipes into a pager); "kvbench help NAME" is NAME's -h.
func TestAudit26Usage(t *testing.T) {
	lists := func(t *testing.T, s string) {
		t.Helper()
		require.True(t, strings.HasPrefix(s, "usage: kvbench NAME [flags]"), "%q", s)
		for _, c := range commands {
			assert.Contains(t, s, "  "+c.name+" ", c.name)
		}
	}
	var out, errb bytes.Buffer
	require.Equal(t, 2, run(nil, &out, &errb))
	assert.Empty(t, out.String())
	lists(t, errb.String())
	for _, h := range []string{"help", "-h", "-help", "--help"} {
		out.Reset()
		errb.Reset()
		require.Equal(t, 0, run([]string{h}, &out, &errb), h)
		assert.Empty(t, errb.String(), h)
		lists(t, out.String())
	}
	out.Reset()
	errb.Reset()
	require.Equal(t, 0, run([]string{"help", "plan"}, &out, &errb))
	assert.True(t, strings.HasPrefix(errb.String(), "usage: kvbench plan [flags]"), errb.String())
	assert.Equal(t, 2, run([]string{"help", "nope"}, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.Equal(t, 2, run([]string{"help", "plan", "quant"}, &bytes.Buffer{}, &bytes.Buffer{}))
}
