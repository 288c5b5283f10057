//go:build redis

package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRunFleetFailsLoudlyWhenRedisIsUnreachable: a Redis that cannot be
// reached marks the Redis rows as failed and fails the command.
func TestRunFleetFailsLoudlyWhenRedisIsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	var out, errb bytes.Buffer
	err = runFleet([]string{"-requests", "50", "-redis", addr}, &out, &errb)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "5 redis replay(s) failed")
	assert.Equal(t, 5, strings.Count(out.String(), "**FAILED**"), out.String())
}
