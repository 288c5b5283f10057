package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/internal/redistest"
)

func TestRunFleetPrintsEveryRouter(t *testing.T) {
	var out, errb bytes.Buffer
	addr := redistest.Optional()
	args := []string{"-requests", "300", "-redis", addr}
	require.NoError(t, runFleet(args, &out, &errb), errb.String())
	s := out.String()
	for _, r := range []string{"| random |", "| round-robin |", "| least-loaded |", "| prefix-aware |", "| prefix-aware, load cap 8 |"} {
		assert.Contains(t, s, r)
	}
	assert.Contains(t, s, "prefix-aware hit rate")
	if addr != "" {
		assert.Equal(t, 2, strings.Count(s, "| identical |"), s)
	} else {
		assert.Contains(t, s, "redis replays skipped")
	}
}

func TestRunFleetRejectsBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	require.Error(t, runFleet([]string{"-requests", "-1"}, &out, &errb))
	require.Error(t, runFleet([]string{"-servers", "0", "-requests", "10", "-redis", ""}, &out, &errb))
	require.Error(t, runFleet([]string{"extra"}, &out, &errb))
}
