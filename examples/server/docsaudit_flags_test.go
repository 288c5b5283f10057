package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsauditZeroSizesRefused: -block-size 0 and -max-num-seqs 0 were
// taken as the library's defaults (16 tokens, 256 sequences) rather than
// refused, unlike every other flag out of range.
func TestDocsauditZeroSizesRefused(t *testing.T) {
	for _, args := range [][]string{{"-block-size", "0"}, {"-max-num-seqs", "0"}, {"-block-size", "-4"}} {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "-steps", "1"), env{stdout: &out, stderr: &out, sleep: noSleep})
		require.Error(t, err, "%v", args)
		assert.Contains(t, err.Error(), args[0])
	}
}

// TestDocsauditErrorLinePrefixedOnce: main prefixes "server: " once; the
// server package's errors carry it already ("server: server: paged: ..."
// was printed for -blocks 1).
func TestDocsauditErrorLinePrefixedOnce(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-blocks", "1"}, env{stdout: &out, stderr: &out, sleep: noSleep})
	require.Error(t, err)
	line := errorLine(err)
	assert.Regexp(t, `^server: paged: invalid argument: Config.NumBlocks 1`, line)
	assert.Equal(t, "server: -speed 0 must be positive", errorLine(errors.New("-speed 0 must be positive")))
}

// TestDocsauditSpecFieldErrorsReadOnce: a field whose value does not fit
// (a token ID past int32) is named once, with the decoder's reason; the
// message repeated "server: invalid request: body:" inside itself.
func TestDocsauditSpecFieldErrorsReadOnce(t *testing.T) {
	_, err := DecodeSpec(strings.NewReader(`{"prompt":[1,2147483648],"max_tokens":5}`))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, 1, strings.Count(err.Error(), "invalid request"), err.Error())
	assert.Contains(t, err.Error(), `field "prompt"`)
	assert.Contains(t, err.Error(), "2147483648")
	_, err = DecodeSpec(strings.NewReader(`{"max_tokens":"five"}`))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Equal(t, 1, strings.Count(err.Error(), "invalid request"), err.Error())
	_, err = DecodeSpec(strings.NewReader(`{"prompt":[1,2`))
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "unexpected end of JSON")
}
