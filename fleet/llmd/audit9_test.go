package llmd

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9SharedComputersAreSafeForConcurrentUse runs one Processor and
// one SHA256CBOR from four goroutines at once (both say they are safe for
// concurrent use; run with -race), each through AppendKeys, AppendDigests
// and Sum with an extra value, and checks every answer against one
// computed alone beforehand.
func TestAudit9SharedComputersAreSafeForConcurrentUse(t *testing.T) {
	cfg := Config{BlockSize: 4, HashSeed: "seed", Model: "m"}
	p, err := New(cfg)
	require.NoError(t, err)
	s, err := NewSHA256CBOR(cfg)
	require.NoError(t, err)
	extra := []any{"lora", "image"}
	toks := func(k int) []int32 {
		out := tokens(4*(1+k%5) + k%3)
		for i := range out {
			out[i] += int32(k * 1000)
		}
		return out
	}
	const n = 40
	keys, cbKeys := make([][]uint64, n), make([][]uint64, n)
	digests := make([][]paged.Hash, n)
	sums, cbSums := make([]uint64, n), make([]paged.Hash, n)
	for k := range n {
		keys[k] = p.AppendKeys(nil, 0, toks(k))
		cbKeys[k] = s.AppendKeys(nil, toks(k))
		digests[k] = s.AppendDigests(nil, nil, toks(k))
		sums[k], err = p.Sum(p.Root(), toks(k)[:4], extra)
		require.NoError(t, err)
		cbSums[k], err = s.Sum(nil, toks(k)[:4], extra)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			var ks []uint64
			var ds []paged.Hash
			for i := range 3 * n {
				k := (i + w*7) % n
				ks = p.AppendKeys(ks[:0], 0, toks(k))
				assert.True(t, slices.Equal(keys[k], ks), "Processor keys %d", k)
				ks = s.AppendKeys(ks[:0], toks(k))
				assert.True(t, slices.Equal(cbKeys[k], ks), "SHA256CBOR keys %d", k)
				ds = s.AppendDigests(ds[:0], nil, toks(k))
				assert.True(t, slices.Equal(digests[k], ds), "digests %d", k)
				got, err := p.Sum(p.Root(), toks(k)[:4], extra)
				assert.NoError(t, err)
				assert.Equal(t, sums[k], got, "Processor Sum %d", k)
				h, err := s.Sum(nil, toks(k)[:4], extra)
				assert.NoError(t, err)
				assert.Equal(t, cbSums[k], h, "SHA256CBOR Sum %d", k)
			}
		})
	}
	wg.Wait()
}
