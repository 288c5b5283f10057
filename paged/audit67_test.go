package paged_test

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit67ChunkedHitAtEveryLength: blocks of 1 token and a chunk of
// 4: a prompt whose first L tokens are cached hits all L in both groups
// (the chunked group needs the blocks of L's chunk before L), for every
// L up to a chunk and past it. M988 (the position before a chunk's start
// taken in that chunk) made the hit's walk start past its limit at L = 3
// and never return: caught only by the package's 5-minute timeout. Each
// lookup here has 10 seconds.
func TestAudit67ChunkedHitAtEveryLength(t *testing.T) {
	for L := 1; L <= 9; L++ {
		m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 64,
			Groups: []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 4}}})
		require.NoError(t, err)
		prompt := seqOf(1, 12)
		w, _, err := m.Create(prompt[:L], nil)
		require.NoError(t, err)
		require.NoError(t, m.Free(w))
		m.EndStep()
		done := make(chan int, 1)
		go func() {
			_, cached, err := m.Create(append(append([]int32(nil), prompt[:L]...), 999), nil)
			if err != nil {
				cached = -1
			}
			done <- cached
		}()
		select {
		case cached := <-done:
			assert.Equal(t, L, cached, "a prefix of %d tokens cached", L)
		case <-time.After(10 * time.Second):
			t.Fatalf("the lookup of a %d-token cached prefix did not return", L)
		}
		require.NoError(t, m.Check())
	}
}

// TestAudit67ChunkedKeepsLastCachedBlock: with prefix caching, a
// chunked-local group keeps its last cached (committed) block while the
// next query's chunk starts past it, as vLLM's does, and releases it once
// a later block is committed; without prefix caching it goes as soon as
// no query reads it. Blocks of 4 tokens, a chunk of 4: at 6 tokens only
// block 0 is committed, and it stays (M990 released it, as without
// caching: the rule held back only from two committed blocks on); at 9
// tokens block 1 is committed and block 0 goes.
func TestAudit67ChunkedKeepsLastCachedBlock(t *testing.T) {
	for _, cache := range []bool{true, false} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, DisablePrefixCaching: !cache,
			Groups: []paged.Group{{}, {Kind: paged.ChunkedLocal, Chunk: 4}}})
		require.NoError(t, err)
		id, _, err := m.Create(seqOf(1, 5), nil)
		require.NoError(t, err)
		require.NoError(t, m.Append(id, 100))
		tab, err := m.TableGroup(id, 1)
		require.NoError(t, err)
		if cache {
			assert.NotZero(t, tab[0], "block 0, the last cached one, is kept: %v", tab)
		} else {
			assert.Zero(t, tab[0], "without caching, block 0 goes: %v", tab)
		}
		for _, tok := range []int32{101, 102, 103} { // decode steps
			require.NoError(t, m.Append(id, tok))
		}
		tab, err = m.TableGroup(id, 1)
		require.NoError(t, err)
		assert.Zero(t, tab[0], "caching %v, block 1 is cached now: block 0 is released: %v", cache, tab)
		if cache {
			assert.NotZero(t, tab[1], "block 1, the last cached one now, is kept: %v", tab)
		}
		require.NoError(t, m.Check())
	}
}

// TestAudit67TruncateAdviceHolds: a Truncate refused because a local
// group released positions the query at the new length would read names
// the least length that works; truncating to it succeeds, and one token
// less is refused. Blocks of 4 tokens and a chunk of 6: at 20 tokens the
// chunked group has released its first 4 blocks (16 positions, the
// query at 19 reads from 18); the advice is 18, the start of the chunk
// holding position 16 rounded up (M992 rounded it down, to 12, which is
// refused); likewise for a window of 3.
func TestAudit67TruncateAdviceHolds(t *testing.T) {
	for _, g := range []paged.Group{{Kind: paged.ChunkedLocal, Chunk: 6}, {Kind: paged.SlidingWindow, Window: 3}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, DisablePrefixCaching: true,
			Groups: []paged.Group{{}, g}})
		require.NoError(t, err)
		id, _, err := m.Create(seqOf(1, 19), nil)
		require.NoError(t, err)
		require.NoError(t, m.Append(id, 100)) // the step after the prompt releases
		tab, err := m.TableGroup(id, 1)
		require.NoError(t, err)
		require.Zero(t, tab[0], "%v: released blocks first: %v", g.Kind, tab)
		err = m.Truncate(id, 1)
		require.ErrorIs(t, err, paged.ErrInvalid)
		match := regexp.MustCompile(`truncate to at least (\d+)`).FindStringSubmatch(err.Error())
		require.NotNil(t, match, "%v: %v", g.Kind, err)
		least, _ := strconv.Atoi(match[1])
		assert.ErrorIs(t, m.Truncate(id, least-1), paged.ErrInvalid, "%v: one less than the advice %d", g.Kind, least)
		require.NoError(t, m.Truncate(id, least), "%v: the advice %d", g.Kind, least)
		require.NoError(t, m.Check())
	}
}
