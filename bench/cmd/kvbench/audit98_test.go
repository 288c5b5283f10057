package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tinyQuant is the smallest study: one KV head of one value, one query,
// one 64-token length, one type. A bad flag added to it that the checks
// let through runs in milliseconds instead of refusing.
var tinyQuant = []string{"-q-heads", "1", "-kv-heads", "1", "-head-dim", "1", "-layers", "1",
	"-lengths", "64", "-seqs", "1", "-queries", "1", "-units", "2", "-min-chunk", "16", "-types", "fp16"}

// TestAudit98QuantRefusals: each of these flags of kvbench quant is a
// usage error (exit status 2) with nothing on stdout, before any work:
// -units, -min-chunk, -block-size, -q-heads or -kv-heads of 0, -queries
// past 2^16, a mixed row whose value type the codecs do not know (kvmem
// lays out mxfp4, the study cannot store it), and a long length that is
// not the first of -lengths.
func TestAudit98QuantRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the message, when the refusal must be this check's
	}{
		{[]string{"-units", "0"}, "must be positive"},
		{[]string{"-min-chunk", "0"}, "must be positive"},
		{[]string{"-block-size", "0"}, "must be positive"},
		{[]string{"-q-heads", "0"}, "-q-heads must be a positive multiple"},
		{[]string{"-kv-heads", "0"}, "-q-heads must be a positive multiple"},
		{[]string{"-queries", "65537"}, "-queries 65537"},
		{[]string{"-types", "fp16/mxfp4"}, "mxfp4"},
		// 2^12 KV heads of 2^16 values: one token is 2^28 keys, 1,024
		// tokens 2^38; the row named next is refused only after.
		{[]string{"-kv-heads", "4096", "-q-heads", "4096", "-head-dim", "65536", "-lengths", "1,1024", "-types", "nope"}, "keys to hold"},
	} {
		quantRefused(t, tc.args, tc.want)
	}
}

// quantRefused requires kvbench quant, run on tinyQuant with args added,
// to be a usage error (exit status 2) whose message has want in it, with
// nothing on stdout, and not to panic.
func quantRefused(t *testing.T, args []string, want string) {
	t.Helper()
	full := append(append([]string{"quant"}, tinyQuant...), args...)
	var out, errOut bytes.Buffer
	assert.NotPanics(t, func() {
		assert.Equal(t, 2, run(full, &out, &errOut), "%v: %s", args, errOut.String())
	}, "%v", args)
	assert.Empty(t, out.String(), "%v", args)
	assert.Contains(t, errOut.String(), want, "%v", args)
}

// TestAudit98QuantKIVIGroupBound: a KIVI row's group is at most 4,096
// tokens, as its error says.
func TestAudit98QuantKIVIGroupBound(t *testing.T) {
	r, err := parseQuantRow("kivi-int4-g4096", 16)
	require.NoError(t, err)
	assert.Equal(t, 4096, r.blockSize)
	for _, name := range []string{"kivi-int4-g4097", "kivi-int2-g8192"} {
		_, err := parseQuantRow(name, 16)
		assert.ErrorContains(t, err, "G in [1, 4096]", name)
	}
}

// TestAudit98QuantLongestLength: -lengths takes 2^20 tokens, its upper
// bound (a study of one value per token, so it is quick).
func TestAudit98QuantLongestLength(t *testing.T) {
	args := append(append([]string(nil), tinyQuant...), "-json", "-lengths", "1048576", "-block-size", "1024")
	var out, errOut bytes.Buffer
	require.NoError(t, runQuant(args, &out, &errOut), errOut.String())
	var res []quantResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	require.Len(t, res, 1)
	require.Len(t, res[0].Errors, 1)
	assert.Equal(t, 1<<20, res[0].Errors[0].Context)
}

// audit98Quant is a study with 200 samples per cell (1 sequence x 4
// queries x 50 query heads), so a cell's 99th percentile is not its
// maximum; 512 layers of one 64-value KV head make fp16 128 KiB a token
// (131.1 kB); the lengths and types are written with spaces after their
// commas.
var audit98Quant = []string{"-q-heads", "50", "-kv-heads", "1", "-head-dim", "64", "-layers", "512",
	"-lengths", "256, 1024", "-seqs", "1", "-queries", "4", "-units", "8", "-min-chunk", "32",
	"-types", "fp16, int4-g16, int4-ch"}

// TestAudit98QuantTableAndJSON: the table says what the JSON does. Its
// header counts the sequences and the queries, each as given; a length
// is labelled in K only when a multiple of 1,024; KiB/token is in KiB;
// an error cell is the mean and, in parentheses, the maximum. A
// per-channel row outside KIVI ("int4-ch") is laid out as a group of a
// block's tokens, 16 here: the bytes of int4-g16.
func TestAudit98QuantTableAndJSON(t *testing.T) {
	var table, js, errOut bytes.Buffer
	require.NoError(t, runQuant(audit98Quant, &table, &errOut), errOut.String())
	require.NoError(t, runQuant(append(append([]string(nil), audit98Quant...), "-json"), &js, &errOut), errOut.String())
	var res []quantResult
	require.NoError(t, json.Unmarshal(js.Bytes(), &res))
	require.Len(t, res, 3)
	assert.Equal(t, "int4-ch", res[2].Key)
	assert.Equal(t, "int4-ch", res[2].Value)
	assert.Equal(t, res[1].BytesPerToken, res[2].BytesPerToken)
	assert.Equal(t, int64(128<<10), res[0].BytesPerToken)

	s := table.String()
	assert.Contains(t, s, "over 1 sequences x 4 queries x 50 heads")
	assert.Contains(t, s, "err @256")
	assert.Contains(t, s, "err @1K")
	assert.NotContains(t, s, "err @0K")
	lines := strings.Split(s, "\n")
	row := func(typ string) string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == typ {
				return l
			}
		}
		t.Fatalf("no row %s in\n%s", typ, s)
		return ""
	}
	assert.Contains(t, strings.Fields(row("fp16")), "128.0", "KiB/token")
	distinct := false
	for _, r := range res {
		l := row(r.Type)
		for _, e := range r.Errors {
			assert.Contains(t, l, fmt.Sprintf("%.2e (%.1e)", e.Mean, e.Max), r.Type)
			distinct = distinct || fmt.Sprintf("%.1e", e.P99) != fmt.Sprintf("%.1e", e.Max)
		}
	}
	require.True(t, distinct, "no cell tells its 99th percentile from its maximum")
}

// TestAudit98Summarize: the 99th percentile of k samples is the
// ceil(0.99 k)-th smallest (the 99th of 100, the 198th of 200), the
// maximum the largest, the mean their mean.
func TestAudit98Summarize(t *testing.T) {
	for _, k := range []int{1, 2, 100, 200} {
		rel := make([]float64, k)
		for i := range rel {
			rel[i] = float64(i + 1)
		}
		rand.New(rand.NewPCG(1, uint64(k))).Shuffle(k, func(i, j int) { rel[i], rel[j] = rel[j], rel[i] })
		want := quantError{Context: 7, Mean: float64(k+1) / 2, P99: float64((99*k + 99) / 100), Max: float64(k)}
		assert.Equal(t, want, summarize(7, rel), "%d samples", k)
	}
}

// TestAudit98ParallelErrors: parallel runs every index once and returns
// the errors of all that failed.
func TestAudit98ParallelErrors(t *testing.T) {
	e3, e7 := errors.New("three"), errors.New("seven")
	var runs [10]atomic.Int32
	err := parallel(len(runs), func(_, i int) error {
		runs[i].Add(1)
		switch i {
		case 3:
			return e3
		case 7:
			return e7
		}
		return nil
	})
	require.ErrorIs(t, err, e3)
	require.ErrorIs(t, err, e7)
	for i := range runs {
		assert.Equal(t, int32(1), runs[i].Load(), "index %d", i)
	}
	assert.NoError(t, parallel(4, func(_, _ int) error { return nil }))
}

// TestAudit98QuantRowsIndependent: a row's figures do not depend on the
// rows measured before it. On one worker, one cell measures every row in
// turn, each with a block manager of its own: KIVI-g128 after fp16 at
// 1,024 tokens must not inherit fp16's batch (a table 64 blocks wide,
// more than the new manager's 9 blocks allow).
func TestAudit98QuantRowsIndependent(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	base := []string{"-q-heads", "2", "-kv-heads", "1", "-head-dim", "128", "-layers", "1",
		"-lengths", "1024", "-seqs", "1", "-queries", "1", "-units", "4", "-min-chunk", "64", "-json", "-types"}
	get := func(types string) []quantResult {
		var out, errOut bytes.Buffer
		require.NoError(t, runQuant(append(append([]string(nil), base...), types), &out, &errOut), "%s: %s", types, errOut.String())
		var res []quantResult
		require.NoError(t, json.Unmarshal(out.Bytes(), &res))
		return res
	}
	both, alone := get("fp16,kivi-int4-g128"), get("kivi-int4-g128")
	require.Len(t, both, 2)
	assert.Equal(t, alone[0], both[1])
}
