package docscheck

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/bench/attention"
	"github.com/pagedkv/pagedkv/bench/traces"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/kvmem"
	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
)

// checkError asserts the project's error convention on one refusal: it
// wraps the sentinel, and its message starts with the package's prefix
// followed by a lowercase word.
func checkError(t *testing.T, name string, err, sentinel error, prefix string) {
	t.Helper()
	if !assert.Error(t, err, name) {
		return
	}
	assert.ErrorIs(t, err, sentinel, name)
	msg := err.Error()
	if assert.True(t, strings.HasPrefix(msg, prefix+": "), "%s: %q lacks the prefix %q", name, msg, prefix+": ") {
		rest := []rune(strings.TrimPrefix(msg, prefix+": "))
		assert.True(t, len(rest) > 0 && !unicode.IsUpper(rest[0]), "%s: %q is not lowercase after the prefix", name, msg)
	}
}

// kv keeps the error of a call that returns a value and an error.
func kv[T any](_ T, err error) error { return err }

// TestDocsauditErrorsOfThePlainPackages samples bad input to the public
// API of the packages without a hostile test of their own (kvmem, the trace
// readers, the attention reference, the eviction registry): each refusal
// is a clear, prefixed, lowercase error wrapping its package's sentinel.
func TestDocsauditErrorsOfThePlainPackages(t *testing.T) {
	spec := kvmem.Spec{Layers: 2, KVHeads: 2, HeadDim: 64, Key: kvmem.BF16}
	dep := kvmem.Deployment{GPUMemory: 80 << 30}
	for name, err := range map[string]error{
		"negative tokens":    kv(spec.SequenceBytes(-1, 16)),
		"zero block size":    kv(spec.SequenceBytes(16, 0)),
		"empty spec":         kv(kvmem.Spec{}.SequenceBytes(16, 16)),
		"no key type":        kv(kvmem.Spec{Layers: 2, KVHeads: 2, HeadDim: 64}.SequenceBytes(16, 16)),
		"negative weights":   kv(kvmem.Plan(spec, -1, dep)),
		"no gpu memory":      kv(kvmem.Plan(spec, 1, kvmem.Deployment{})),
		"tp not a divisor":   kv(kvmem.Plan(spec, 1, kvmem.Deployment{GPUMemory: 80 << 30, GPUs: 4, TP: 3})),
		"unknown type":       kv(kvmem.ParseType("fp7")),
		"unknown model":      kv(kvmem.LookupModel("gpt-9")),
		"state block size":   kv(spec.StateBlocks(kvmem.Group{Kind: kvmem.State}, 0)),
		"negative reserve":   kv(kvmem.Plan(spec, 1, kvmem.Deployment{GPUMemory: 80 << 30, Reserve: -0.5})),
		"reserve of all":     kv(kvmem.Plan(spec, 1, kvmem.Deployment{GPUMemory: 80 << 30, Reserve: 1})),
		"int4 group zero":    kv(kvmem.Spec{Layers: 2, KVHeads: 2, HeadDim: 64, Key: kvmem.INT4(0)}.SequenceBytes(16, 16)),
		"negative chunk":     kv(kvmem.Plan(spec, 1, kvmem.Deployment{GPUMemory: 80 << 30, PrefillChunk: -1})),
		"value int2 group 3": kv(kvmem.Spec{Layers: 2, KVHeads: 2, HeadDim: 64, Key: kvmem.BF16, Value: kvmem.INT2(3)}.SequenceBytes(16, 16)),
		"head dim vs group":  kv(kvmem.Spec{Layers: 2, KVHeads: 2, HeadDim: 48, Key: kvmem.INT4(32)}.SequenceBytes(16, 16)),
		"mla row vs group":   kv(kvmem.Spec{Layers: 2, MLALatent: 500, MLARope: 4, Key: kvmem.Q4_0}.SequenceBytes(16, 16)),
		"window layers off":  kv(kvmem.Spec{Layers: 3, KVHeads: 2, HeadDim: 64, Key: kvmem.BF16, Groups: []kvmem.Group{{Kind: kvmem.Full, Layers: 1}}}.SequenceBytes(16, 16)),
	} {
		checkError(t, "kvmem "+name, err, kvmem.ErrInvalid, "kvmem")
	}
	_, err := kvmem.Plan(spec, 1<<40, kvmem.Deployment{GPUMemory: 1 << 30})
	checkError(t, "kvmem weights beyond the device", err, kvmem.ErrTooSmall, "kvmem")

	_, err = eviction.ByName("lruu")
	checkError(t, "eviction unknown policy", err, eviction.ErrUnknownPolicy, "eviction")

	for name, read := range map[string]func() error{
		"azure header": func() error { _, err := traces.ReadAzure(strings.NewReader("garbage\n1,2\n")); return err },
		"azure row": func() error {
			_, err := traces.ReadAzure(strings.NewReader("TIMESTAMP,ContextTokens,GeneratedTokens\nx,-1,2\n"))
			return err
		},
		"mooncake json": func() error { _, err := traces.ReadMooncake(bytes.NewReader([]byte("{bad"))); return err },
		"file format":   func() error { _, err := traces.ReadFile("trace.bin", ""); return err },
	} {
		checkError(t, "traces "+name, read(), traces.ErrFormat, "traces")
	}

	_, err = attention.ParseCodec("zzz")
	checkError(t, "attention codec", err, attention.ErrCodec, "attention")
	_, err = attention.NewStore(attention.Shape{}, 4, nil, nil)
	checkError(t, "attention shape", err, attention.ErrInvalid, "attention")
}

// TestDocsauditSchedRefusalsChangeNothing: Submit's refusals (an empty
// prompt, a negative token, N or BeamWidth out of range, a request longer
// than the model) wrap sched's sentinels, name the field, and leave the
// scheduler and its manager as they were.
func TestDocsauditSchedRefusalsChangeNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	s, err := sched.New(m, sched.Config{})
	require.NoError(t, err)
	_, err = s.Submit([]int32{1, 2, 3, 4, 5}, sched.Options{MaxTokens: 2})
	require.NoError(t, err)
	stats, mstats, load := s.Stats(), m.Stats(), s.Load()
	for _, c := range []struct {
		name     string
		prompt   []int32
		opts     sched.Options
		sentinel error
		mentions string
	}{
		{"empty prompt", nil, sched.Options{MaxTokens: 4}, sched.ErrInvalid, "prompt"},
		{"no max tokens", []int32{1}, sched.Options{}, sched.ErrInvalid, "MaxTokens"},
		{"negative token", []int32{1, -1}, sched.Options{MaxTokens: 4}, sched.ErrInvalid, "token -1"},
		{"too many samples", []int32{1}, sched.Options{MaxTokens: 4, N: sched.MaxSamples + 1}, sched.ErrInvalid, "N 65"},
		{"negative beams", []int32{1}, sched.Options{MaxTokens: 4, BeamWidth: -2}, sched.ErrInvalid, "BeamWidth"},
		{"longer than the model", make([]int32, 100), sched.Options{MaxTokens: 4}, sched.ErrNever, "MaxModelLen"},
	} {
		r, err := s.Submit(c.prompt, c.opts)
		checkError(t, c.name, err, c.sentinel, "sched")
		assert.ErrorContains(t, err, c.mentions, c.name)
		assert.Nil(t, r, c.name)
		assert.Equal(t, stats, s.Stats(), c.name)
		assert.Equal(t, load, s.Load(), c.name)
		assert.Equal(t, mstats, m.Stats(), c.name)
		require.NoError(t, m.Check(), c.name)
	}
	if err := s.Update([]int32{1, 2, 3}); assert.Error(t, err) {
		checkError(t, "update without a step", err, sched.ErrInvalid, "sched")
	}
	assert.Equal(t, stats, s.Stats())
	assert.True(t, errors.Is(func() error { _, err := s.Submit([]int32{-1}, sched.Options{MaxTokens: 1}); return err }(), paged.ErrInvalid),
		"a token refused by the manager also wraps paged.ErrInvalid")
}
