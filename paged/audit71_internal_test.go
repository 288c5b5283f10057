package paged

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
)

// Internal tests of the twenty-fourth mutation round (docs/testing.md);
// the others are in audit71_test.go.

// TestAudit71CheckNamesEachRule: Check names the rule a corruption
// breaks, one corruption per rule, each changing one field so that no
// earlier rule sees it. Its property tests lean on Check as their oracle,
// so a rule weakened to let a corruption through to a later rule (or to
// no rule) weakens them all: the mutants of this round made each of these
// rules one-sided (a counter above the truth passed) or dropped it, and
// each corruption then passed or was caught later under another message.
func TestAudit71CheckNamesEachRule(t *testing.T) {
	window := &SeqOptions{Window: 4}
	for _, tc := range []struct {
		name, want string
		groups     []Group
		opts       *SeqOptions
		corrupt    func(m *Manager, s, w *sequence)
	}{
		// M1164, M1165: a waiting sequence holds no block, in any group.
		{"a waiting sequence with a block", `waiting sequence slot \d+ holds 1 blocks$`, nil, nil,
			func(m *Manager, s, w *sequence) { w.blocks = append(w.blocks, s.blocks[0]) }},
		{"a waiting sequence with a block of group 1", `waiting sequence slot \d+ holds 1 blocks in group 1`,
			[]Group{{Kind: FullAttention}, {Kind: FullAttention}}, nil,
			func(m *Manager, s, w *sequence) { w.ext[0].blocks = append(w.ext[0].blocks, s.ext[0].blocks[0]) }},
		// M1166-M1169: counters one above the truth.
		{"the running counter", `1 running sequences, counter says 2`, nil, nil,
			func(m *Manager, s, w *sequence) { m.nrunning++ }},
		{"the draft pages counter", `hold 0 pages for their drafts' states, counter says 1`, nil, nil,
			func(m *Manager, s, w *sequence) { m.draftPages++ }},
		{"the retention pins counter", `hold 0 retention pins, counter says 1`, nil, nil,
			func(m *Manager, s, w *sequence) { m.ret.pinned++ }},
		{"the spare pages counter", `keep 0 spare pages for draft states, counter says 1`, nil, nil,
			func(m *Manager, s, w *sequence) { m.sparePages++ }},
		// M1170: a table entry more than the tokens need (a null one,
		// which no reference count sees).
		{"a table longer than the tokens", `has 10 tokens but 4 blocks`, nil, nil,
			func(m *Manager, s, w *sequence) { s.blocks = append(s.blocks, nullBlock) }},
		// M1171: a committed mark past the full blocks (the hashes made as
		// long, so that the hashes' bound does not see it first).
		{"a committed mark past the full blocks", `committed 3, hashes 3, tokens 10`, nil, nil,
			func(m *Manager, s, w *sequence) {
				s.hashes = append(s.hashes, Hash{})
				s.committed = 3
			}},
		// M1172: released entries in a table without a window.
		{"a released entry without a window", `\(window 0\): 1 released entries`, nil, nil,
			func(m *Manager, s, w *sequence) { s.released = 1 }},
		// M1173: the first block the next query reads made null with the
		// released prefix (window 4, 10 tokens: the query at 10 reads
		// from position 7, block 1).
		{"the first block read released", `entry 1 is null, but the query at 10 reads positions from 7`, nil, window,
			func(m *Manager, s, w *sequence) {
				require.Equal(t, 1, s.released)
				s.blocks[1], s.released = nullBlock, 2
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 16, Groups: tc.groups})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8}, tc.opts)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 9, 10))
			wid, err := m.Add([]int32{20, 21, 22}, nil)
			require.NoError(t, err)
			require.NoError(t, m.Check())
			s, err := m.seq(id)
			require.NoError(t, err)
			w, err := m.seq(wid)
			require.NoError(t, err)
			tc.corrupt(m, s, w)
			err = m.Check()
			require.Error(t, err)
			require.Regexp(t, tc.want, err.Error())
		})
	}
}

// TestAudit71CheckNamesPoolRules: Check names the rule broken by a
// corruption of the pool's side (policy and shelves, the index's
// duplicate lists, the free record slots, the step's copies), as
// TestAudit71CheckNamesEachRule does for the tables. Each case builds
// the state its rule reads and changes one field. M1174-M1179 and
// M1182-M1184 dropped or loosened these rules; each corruption then
// passed Check or was caught later under another message.
func TestAudit71CheckNamesPoolRules(t *testing.T) {
	windowed := []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}
	// finished runs a 12-token prompt and frees it: its blocks wait in
	// the policy or on a shelf.
	finished := func(t *testing.T, m *Manager) {
		id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, nil)
		require.NoError(t, err)
		m.EndStep()
		require.NoError(t, m.Free(id))
	}
	// twins makes two cached, unreferenced blocks of one content (two
	// forks filling their shared partly filled block alike) and returns
	// the one that is not its duplicate list's head.
	twins := func(t *testing.T, m *Manager) allocator.BlockID {
		a, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, nil)
		require.NoError(t, err)
		m.EndStep()
		b, err := m.Fork(a)
		require.NoError(t, err)
		require.NoError(t, m.Append(a, 7, 8))
		require.NoError(t, m.Append(b, 7, 8))
		at, err := m.Table(a)
		require.NoError(t, err)
		bt, err := m.Table(b)
		require.NoError(t, err)
		require.NotEqual(t, at[1], bt[1], "each fork wrote its own copy")
		s, err := m.seq(a)
		require.NoError(t, err)
		h := s.hashes[1]
		m.EndStep()
		require.NoError(t, m.Free(a))
		require.NoError(t, m.Free(b))
		head, ok := m.bp.index.get(&h)
		require.True(t, ok)
		if head == at[1] {
			return bt[1]
		}
		require.Equal(t, bt[1], head)
		return at[1]
	}
	for _, tc := range []struct {
		name, want string
		groups     []Group
		corrupt    func(t *testing.T, m *Manager)
	}{
		{"a block in the policy and on a shelf", `block \d+ is both in the policy and on shelf 1`, windowed,
			func(t *testing.T, m *Manager) {
				finished(t, m)
				for id := allocator.BlockID(1); int(id) < m.bp.pool.Total(); id++ {
					if m.bp.policy.Contains(id) {
						m.bp.shelves.where[id] = shelfLow
						return
					}
				}
				t.Fatal("no block in the policy")
			}},
		{"a shelf counting one block less", `policy holds \d+ blocks and shelves \d+, pool has \d+ cached`, windowed,
			func(t *testing.T, m *Manager) {
				finished(t, m)
				for id := allocator.BlockID(1); int(id) < m.bp.pool.Total(); id++ {
					if s := m.bp.shelves.shelfOf(id); s != shelfPolicy {
						m.bp.shelves.n[s]--
						return
					}
				}
				t.Fatal("no block on a shelf")
			}},
		{"a cached block on the free list", `block \d+: free = true but in policy = true`, nil,
			func(t *testing.T, m *Manager) {
				finished(t, m)
				for id := allocator.BlockID(1); int(id) < m.bp.pool.Total(); id++ {
					if m.bp.policy.Contains(id) {
						m.bp.pool.Evict(id) // the pool frees it; policy and index keep it
						return
					}
				}
				t.Fatal("no block in the policy")
			}},
		// Two full-attention groups: each block of a prompt has one
		// hash in both, indexed under each group's salt. Group 0's block
		// marked as group 1's finds group 1's block under its new key.
		{"a block keyed under another group", `index entry [0-9a-f]+ of block \d+ is not keyed by its group 1`,
			[]Group{{Kind: FullAttention}, {Kind: FullAttention}},
			func(t *testing.T, m *Manager) {
				id, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
				require.NoError(t, err)
				s, err := m.seq(id)
				require.NoError(t, err)
				b0 := s.blocks[0]
				m.EndStep()
				require.NoError(t, m.Free(id))
				m.bp.index.meta[b0].group = 1
			}},
		{"a duplicate of another group", `names block \d+, which holds other content`, nil,
			func(t *testing.T, m *Manager) { m.bp.index.meta[twins(t, m)].group = 1 }},
		{"a duplicate list without its back link", `duplicate list of [0-9a-f]+ is broken`, nil,
			func(t *testing.T, m *Manager) { m.bp.index.meta[twins(t, m)].prev = allocator.NoBlock }},
		{"a free slot listed twice", `free list names slot \d+, not a free slot or named twice`, nil,
			func(t *testing.T, m *Manager) {
				finished(t, m)
				require.NotEmpty(t, m.freeSeqs)
				m.freeSeqs = append(m.freeSeqs, m.freeSeqs[0])
			}},
		{"free slots keeping too many tokens", `free slots keep \d+ tokens of large buffers, counter says \d+, at most \d+`, nil,
			func(t *testing.T, m *Manager) {
				finished(t, m)
				require.NotEmpty(t, m.freeSeqs)
				n := max(2*m.cfg.MaxModelLen, keepTokens) + 1
				m.seqs[m.freeSeqs[0]].tokens = make([]int32, 0, n)
				m.spare = n
			}},
		{"a copy reading a free block", `copy \d+ -> \d+ of the step reads block \d+, which is free`, nil,
			func(t *testing.T, m *Manager) {
				id, _, err := m.Create([]int32{1, 2, 3, 4, 5}, nil)
				require.NoError(t, err)
				s, err := m.seq(id)
				require.NoError(t, err)
				for f := allocator.BlockID(1); int(f) < m.bp.pool.Total(); f++ {
					if m.bp.pool.RefCount(f) == 0 && !m.bp.hasContent(f) {
						m.bp.named = append(m.bp.named, Copy{Src: f, Dst: s.blocks[1]})
						return
					}
				}
				t.Fatal("no free block")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, Groups: tc.groups})
			require.NoError(t, err)
			tc.corrupt(t, m)
			err = m.Check()
			require.Error(t, err)
			require.Regexp(t, tc.want, err.Error())
		})
	}
}
