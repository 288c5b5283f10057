package paged

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit9PromptHashersBesideABusyManager runs PromptHashers on their
// own goroutines while the manager's goroutine changes the manager
// (commits that fill the hash memo, evictions, hashing of its own), as a
// server does (run with -race): NewPromptHasher and Hashes may be called
// on any goroutine, and their hashes are the manager's.
func TestAudit9PromptHashersBesideABusyManager(t *testing.T) {
	for _, cfg := range []Config{
		{BlockSize: 16, NumBlocks: 40, HashMemo: true, HashSeed: []byte("s")},
		{BlockSize: 4, NumBlocks: 40, Hasher: FastHasher{}},
	} {
		m, err := New(cfg)
		require.NoError(t, err)
		bs := cfg.BlockSize
		prompt := func(k int) []int32 {
			p := make([]int32, 5*bs+1)
			for i := range p {
				p[i] = int32(k%9*1000 + i)
			}
			return p
		}
		want := make([][]Hash, 9)
		for k := range want {
			want[k], err = m.BlockHashes(nil, prompt(k), nil)
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Go(func() {
				ph, err := m.NewPromptHasher(nil)
				if !assert.NoError(t, err) {
					return
				}
				var got []Hash
				for k := w; k < 300; k += 3 {
					got = ph.Hashes(got[:0], prompt(k), nil)
					if !slices.Equal(want[k%9], got) {
						t.Errorf("prompt %d: a PromptHasher's hashes differ from the manager's", k)
						return
					}
				}
			})
		}
		for k := range 300 {
			id, _, err := m.Create(prompt(k), nil)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 1, 2, 3))
			require.NoError(t, m.Free(id))
		}
		wg.Wait()
		require.NoError(t, m.Check())
	}
}
