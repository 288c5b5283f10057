package paged

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAudit9ConfigIsACopy checks that the Config a manager returns, and
// the one its caller passed to New, share no memory with the manager: a
// caller editing either (or reusing the seed buffer) changes neither the
// manager's groups nor what a manager built from Config() computes.
func TestAudit9ConfigIsACopy(t *testing.T) {
	const bs = 4
	seed := []byte("seed-a")
	groups := []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 2 * bs}}
	m, err := New(Config{BlockSize: bs, NumBlocks: 64, HashSeed: seed, Groups: groups})
	require.NoError(t, err)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	want, err := m.BlockHashes(nil, prompt, nil)
	require.NoError(t, err)

	// The caller reuses its buffers after New.
	seed[0] = 'X'
	groups[1] = Group{Kind: ChunkedLocal, Chunk: bs}

	got := m.Config()
	require.Equal(t, []byte("seed-a"), got.HashSeed, "Config().HashSeed follows the caller's buffer")
	require.Equal(t, SlidingWindow, got.Groups[1].Kind)

	// The caller edits what Config returned.
	got.Groups[1] = Group{Kind: ChunkedLocal, Chunk: bs}
	got.HashSeed[0] = 'Y'
	again := m.Config()
	require.Equal(t, Group{Kind: SlidingWindow, Window: 2 * bs}, again.Groups[1], "Config().Groups aliases the manager's groups")
	require.Equal(t, []byte("seed-a"), again.HashSeed, "Config().HashSeed aliases the manager's seed")

	// A twin built from Config() (with its own hasher) hashes as m does.
	cfg := m.Config()
	cfg.Hasher = nil
	twin, err := New(cfg)
	require.NoError(t, err)
	h2, err := twin.BlockHashes(nil, prompt, nil)
	require.NoError(t, err)
	require.True(t, slices.Equal(want, h2), "a manager built from Config() hashes differently")

	id, _, err := m.Create(slices.Repeat([]int32{3}, 6*bs), nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(id, 1))
	require.NoError(t, m.Check())
}
