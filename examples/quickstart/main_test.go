package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuickstartRuns(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	s := out.String()
	assert.Contains(t, s, "B (8 cached")
	assert.Contains(t, s, "copy-on-write directive")
	assert.Contains(t, s, "finds 8 tokens cached")
	assert.Contains(t, s, "BlockStored")
}
