package paged

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// Internal tests of the twenty-eighth mutation round (docs/testing.md);
// the others are in audit74_test.go.

// TestAudit74MarksSurviveStampWrap: the passes that find a sequence named
// twice (BuildBatch, AppendStep, DecodeStep, SwapOut, SwapIn) mark each
// sequence with the pass's stamp, a 32-bit counter. When it comes back
// to 0 after 2^32 passes, every mark is cleared and the stamp starts at 1
// again: a mark left from the first pass, 1, or a mark never set, 0, must
// not read as this pass's. Sequence A was marked by pass 1; B was added
// after it, never marked; each pass kind runs as the counter wraps and
// on the pass after it, and must take both. M1298 kept the marks and
// made 0 the stamp (B, never marked, was "scheduled twice"), M1299 cleared
// them and made 0 the stamp (both were), M1300 kept them with stamp 1 (A
// was).
func TestAudit74MarksSurviveStampWrap(t *testing.T) {
	passes := map[string]func(m *Manager, a, b SeqID) error{
		"BuildBatch": func(m *Manager, a, b SeqID) error {
			return m.BuildBatch(&Batch{}, []Scheduled{{a, 1}, {b, 1}})
		},
		"AppendStep": func(m *Manager, a, b SeqID) error {
			_, err := m.AppendStep([]Scheduled{{a, 1}, {b, 1}}, []int32{7, 8})
			return err
		},
		"DecodeStep": func(m *Manager, a, b SeqID) error {
			_, err := m.DecodeStep(&Batch{}, []Scheduled{{a, 1}, {b, 1}}, []int32{7, 8})
			return err
		},
		"SwapOut then SwapIn": func(m *Manager, a, b SeqID) error {
			if err := m.SwapOut(a, b); err != nil {
				return err
			}
			m.EndStep()
			return m.SwapIn(a, b)
		},
	}
	for name, pass := range passes {
		t.Run(name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 32})
			require.NoError(t, err)
			a, _, err := m.Create([]int32{1, 2, 3}, nil)
			require.NoError(t, err)
			require.NoError(t, m.BuildBatch(&Batch{}, []Scheduled{{a, 3}}))
			require.Equal(t, uint32(1), m.seqs[uint32(a)].mark, "pass 1 marks A")
			b, _, err := m.Create([]int32{4, 5, 6}, nil)
			require.NoError(t, err)
			m.stamp = math.MaxUint32
			for i := range 2 {
				m.EndStep()
				require.NoError(t, pass(m, a, b), "pass %d after the wrap", i)
				require.NoError(t, m.Check())
			}
			// And a sequence named twice is still found.
			m.stamp = math.MaxUint32
			require.ErrorIs(t, m.BuildBatch(&Batch{}, []Scheduled{{a, 1}, {a, 1}}), ErrInvalid)
		})
	}
}

// TestAudit74CheckRefusesFullAttentionPin: a retention pin holds a
// window block before a branch point (retention.go); Check refuses a pin
// of any other block by that rule's message, here a cached
// full-attention block the sequence also holds (the pin counter raised
// with it, so that only the pin itself is wrong). M1312 let a
// full-attention block pass as a pin, and the extra reference was caught
// later under another rule's message.
func TestAudit74CheckRefusesFullAttentionPin(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 16, Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8}, nil)
	require.NoError(t, err)
	m.EndStep()
	require.NoError(t, m.Check())
	s, err := m.seq(id)
	require.NoError(t, err)
	require.True(t, m.bp.hasContent(s.blocks[0]))
	s.keep.pins = append(s.keep.pins, s.blocks[0])
	m.ret.pinned++
	require.Regexp(t, `pins block \d+, which is not a cached window block$`, m.Check())
}

// TestAudit74NoShelvesWithoutCaching: the shelves order cached blocks;
// without prefix caching no block is ever cached, so a hybrid manager
// keeps none (they cost 9 bytes a pool block: 9 MB at a million blocks)
// and frees a sequence's blocks group by group, each table tail first,
// as vLLM's coordinator does, rather than in retention's order across
// groups. The same layout with caching has them. M1301 turned them on
// without caching.
func TestAudit74NoShelvesWithoutCaching(t *testing.T) {
	for _, groups := range [][]Group{
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}, {Kind: State, Pages: 1}},
	} {
		for _, caching := range []bool{false, true} {
			m, err := New(Config{BlockSize: 4, NumBlocks: 64, Groups: groups, DisablePrefixCaching: !caching})
			require.NoError(t, err)
			require.Equal(t, caching, m.ret.on, "retention with caching %v", caching)
			require.Equal(t, caching, m.bp.shelves.where != nil, "shelves with caching %v", caching)
		}
	}
}
