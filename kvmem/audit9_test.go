package kvmem_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/kvmem"
)

// TestAudit9PlanKeepsNoCallerMemory checks that a Capacity does not share
// its spec's Groups with the caller (editing the spec after Plan changes
// no figure) and that editing a preset's groups, or a Spec made from
// one, reaches neither the preset nor another Spec of it.
func TestAudit9PlanKeepsNoCallerMemory(t *testing.T) {
	m, err := kvmem.LookupModel("Gemma-3-27B")
	require.NoError(t, err)
	require.NotEmpty(t, m.KV.Groups)
	d := kvmem.Deployment{GPUs: 2, TP: 1, GPUMemory: 80e9}
	w, err := m.WeightBytes(kvmem.BF16)
	require.NoError(t, err)
	for _, tp := range []int{1, 2} {
		d.TP = tp
		spec := m.Spec(kvmem.BF16, kvmem.Type{})
		c, err := kvmem.Plan(spec, w, d)
		require.NoError(t, err)
		seqs, ctx, bytes := c.MaxSequences(131072), c.MaxContext(4), c.SequenceBytes(131072)
		for i := range spec.Groups {
			spec.Groups[i] = kvmem.Group{}
		}
		assert.Equal(t, []int64{seqs, ctx, bytes}, []int64{c.MaxSequences(131072), c.MaxContext(4), c.SequenceBytes(131072)},
			"TP %d: editing the spec after Plan changed its capacity", tp)
		again, err := kvmem.LookupModel("Gemma-3-27B")
		require.NoError(t, err)
		require.Equal(t, m.KV.Groups, again.KV.Groups, "a Spec's groups alias the preset's")
		s2 := m.Spec(kvmem.BF16, kvmem.Type{})
		require.Equal(t, m.KV.Groups, s2.Groups, "Specs of one model share their groups")
	}
}

// TestAudit9ConcurrentUse exercises the package's claim that every
// function is safe for concurrent use (run with -race): goroutines look up
// presets, edit their copies, parse types and plan at once, and each gets
// the answers of a lone caller.
func TestAudit9ConcurrentUse(t *testing.T) {
	names := []string{}
	for _, m := range kvmem.Models() {
		names = append(names, m.Name)
	}
	d := kvmem.Deployment{GPUs: 8, GPUMemory: 141e9, Reserve: 0.05}
	want := make(map[string]int64)
	for _, n := range names {
		var err error
		want[n], err = plan(n, d)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3 * len(names) {
				n := names[(i+w)%len(names)]
				m, err := kvmem.LookupModel(n)
				if !assert.NoError(t, err) {
					return
				}
				for j := range m.KV.Groups { // a caller editing its copy
					m.KV.Groups[j].Window++
				}
				_ = kvmem.Models()
				_, err = kvmem.ParseType("fp8")
				assert.NoError(t, err)
				got, err := plan(n, d)
				assert.NoError(t, err)
				assert.Equal(t, want[n], got, n)
			}
		})
	}
	wg.Wait()
}

// plan returns the tokens a preset's KV cache holds on d with BF16 weights
// and FP8 KV, -1 for a model too big for d (the same answer every time).
func plan(name string, d kvmem.Deployment) (int64, error) {
	m, err := kvmem.LookupModel(name)
	if err != nil {
		return 0, err
	}
	w, err := m.WeightBytes(kvmem.BF16)
	if err != nil {
		return 0, err
	}
	c, err := kvmem.Plan(m.Spec(kvmem.FP8E4M3, kvmem.Type{}), w, d)
	if err != nil {
		return -1, nil
	}
	return c.Tokens(), nil
}
