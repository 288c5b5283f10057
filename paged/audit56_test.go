package paged

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
)

// The thirteenth mutation round's gaps in the group operations
// (groups.go; docs/testing.md "Mutation testing, thirteenth round").

// TestAudit56SharedTargetBound (M701): a Shared group naming the group one
// past the last is ErrInvalid. The mutant let it past the bound, and New
// panicked reading the kind of the group it named.
func TestAudit56SharedTargetBound(t *testing.T) {
	for _, groups := range [][]Group{
		{{Kind: FullAttention}, {Kind: Shared, Target: 2}},
		{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: Shared, Target: 3}},
	} {
		var err error
		require.NotPanics(t, func() { _, err = New(Config{BlockSize: 4, NumBlocks: 16, Groups: groups}) })
		require.ErrorIs(t, err, ErrInvalid)
	}
}

// a56MRU is an eviction policy that gives up the block that became
// evictable last: a sequence's tables are released group 0 first, so it
// evicts a later group's copy of some content while group 0's stays.
type a56MRU struct {
	stack []allocator.BlockID
	in    []bool
}

func a56NewMRU(n int) eviction.Policy { return &a56MRU{in: make([]bool, max(n, 0))} }

func (p *a56MRU) Insert(id allocator.BlockID) { p.stack, p.in[id] = append(p.stack, id), true }
func (p *a56MRU) Len() int                    { return len(p.stack) }
func (p *a56MRU) Contains(id allocator.BlockID) bool {
	return p.in[id]
}

func (p *a56MRU) Remove(id allocator.BlockID) {
	for i, b := range p.stack {
		if b == id {
			p.stack, p.in[id] = append(p.stack[:i], p.stack[i+1:]...), false
			return
		}
	}
}

func (p *a56MRU) Victim() (allocator.BlockID, bool) {
	n := len(p.stack)
	if n == 0 {
		return 0, false
	}
	id := p.stack[n-1]
	p.stack, p.in[id] = p.stack[:n-1], false
	return id, true
}

// TestAudit56SecondFullGroupBoundsTheHit (M702): with two full-attention
// groups, a prefix hit needs its blocks cached in both. Here group 1's
// copies of a freed prompt are evicted (the policy gives up the blocks
// released last, group 1's) while group 0's stay cached: the prompt again
// hits nothing. The mutant took group 1 for group 0's sole companion only
// from index 2 on, so with the second full group at index 1 the lookup
// asked group 0 alone and reported a hit whose group-1 blocks were gone.
func TestAudit56SecondFullGroupBoundsTheHit(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 7, Policy: a56NewMRU,
		Groups: []Group{{Kind: FullAttention}, {Kind: FullAttention}}})
	require.NoError(t, err)
	prompt := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	a, _, err := m.Create(prompt, nil)
	require.NoError(t, err)
	require.NoError(t, m.Free(a))
	// 6 usable blocks: the two partly filled ones are free, the four
	// full ones cached. Four blocks more evict two, group 1's.
	b, _, err := m.Create([]int32{50, 51, 52, 53, 54}, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), m.Stats().Evictions)
	id, err := m.Add(prompt, nil)
	require.NoError(t, err)
	_, cached, err := m.CanAdmitCached(id)
	require.NoError(t, err)
	require.Zero(t, cached, "group 1 holds none of the prompt's blocks")
	require.NoError(t, m.Free(b))
	cached, err = m.Admit(id)
	require.NoError(t, err)
	require.Zero(t, cached)
	require.NoError(t, m.Check())
}

// TestAudit56PairStartReclaimsSpares (M738): the spare draft states of a
// sequence count as available, and an allocation that finds no block
// free or evictable reclaims them. A token starting a block of a full +
// window pair (a State group beside) takes the decode fast path, whose
// one-block allocation reclaims nothing: it must not be taken while
// spares are held. Here another sequence's spares are all the pool has
// left when the token comes; the mutant took the fast path and the pool
// had no block to give.
func TestAudit56PairStartReclaimsSpares(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 20,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: State, Pages: 1}}})
	require.NoError(t, err)
	// b keeps spares: a verdict accepting one draft of three.
	b, _, err := m.Create([]int32{1000, 1001, 1002, 1003, 1004, 1005}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(b, 1006))
	require.NoError(t, m.AppendSpeculative(b, 1007, 1008, 1009))
	require.NoError(t, m.AcceptSpeculative(b, 1))
	spares := m.Stats().StateSparePages
	require.GreaterOrEqual(t, spares, 2)
	// a ends a block: its next token starts one in both tables.
	a, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7}, nil)
	require.NoError(t, err)
	require.NoError(t, m.Append(a, 8))
	// c takes every free or evictable block: 2 per block of tokens and
	// a page.
	st := m.Stats()
	room := st.FreeBlocks + st.CachedBlocks
	require.Equal(t, 1, room%2, "c's blocks come in pairs, and a page")
	c, _, err := m.Create(make([]int32, 4*(room-1)/2), nil)
	require.NoError(t, err)
	st = m.Stats()
	require.Zero(t, st.FreeBlocks+st.CachedBlocks)
	require.Equal(t, spares, st.StateSparePages)

	require.NoError(t, m.Append(a, 9), "the spares make room")
	require.Less(t, m.Stats().StateSparePages, spares, "reclaimed")
	require.NoError(t, m.Check())
	require.NoError(t, m.Free(c))
	require.NoError(t, m.Free(b))
	require.NoError(t, m.Free(a))
	require.NoError(t, m.Check())
}

// TestAudit56PairCommitsRemembered (M740): with a hash memo, a block a
// decode step fills is remembered when committed, so a later prompt that
// carries the generated tokens (the next turn of a conversation) recalls
// its hash. A full + window pair commits such a block on its own fast
// path (commitPair), which must leave the memo to the general path: the
// pair must recall what a manager of full attention alone recalls. The
// mutant committed past the memo, and the block was hashed again.
func TestAudit56PairCommitsRemembered(t *testing.T) {
	recalled := func(groups []Group) uint64 {
		m, err := New(Config{BlockSize: 4, NumBlocks: 32, HashMemo: true, Groups: groups})
		require.NoError(t, err)
		turn := []int32{1, 2, 3, 4, 5, 6, 7, 8}
		a, _, err := m.Create(turn, nil)
		require.NoError(t, err)
		for tok := int32(9); tok <= 16; tok++ {
			require.NoError(t, m.Append(a, tok))
			turn = append(turn, tok)
		}
		require.NoError(t, m.Free(a))
		before := m.Stats().HashesRecalled
		_, _, err = m.Create(append(turn, 17), nil)
		require.NoError(t, err)
		require.NoError(t, m.Check())
		return m.Stats().HashesRecalled - before
	}
	want := recalled(nil)
	require.Equal(t, uint64(3), want, "full attention alone: the first block hashed (memo.go, recall), the next three recalled, two of them generated")
	require.Equal(t, want, recalled([]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 8}}))
}

// TestAudit56TableGroupIsCapped (M742): TableGroup's view has its length
// for capacity, as documented, so a caller appending to it copies it
// rather than writing the manager's table past its entries. The mutant
// returned the table whole, whose capacity is the sequence's reserve.
func TestAudit56TableGroupIsCapped(t *testing.T) {
	m, err := New(Config{BlockSize: 4, NumBlocks: 32,
		Groups: []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}, {Kind: State, Pages: 2}, {Kind: Shared, Target: 1}}})
	require.NoError(t, err)
	id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6}, &SeqOptions{MaxTokens: 32})
	require.NoError(t, err)
	require.NoError(t, m.Append(id, 7, 8, 9))
	for g := range 4 {
		tb, err := m.TableGroup(id, g)
		require.NoError(t, err)
		require.Equal(t, len(tb), cap(tb), "group %d", g)
	}
}

// TestAudit56CheckCatchesGroupCorruption (M743, M744): Check names a
// window table whose released count is below its null entries, and a
// committed entry of a group naming a block that holds the same content
// for another group, as TestAudit13CheckCatchesCoreCorruption does for
// group 0's table.
func TestAudit56CheckCatchesGroupCorruption(t *testing.T) {
	checkGroupCorruptions(t, []groupCorruption{
		{"a null entry past the released ones", "released", []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}, nil,
			func(_ *Manager, s *sequence) {
				require.Positive(t, s.ext[0].released, "the window slid")
				s.ext[0].released--
			}},
		{"group 0's block in group 1", "committed hash", []Group{{Kind: FullAttention}, {Kind: FullAttention}}, nil,
			func(_ *Manager, s *sequence) { s.blocks[0], s.ext[0].blocks[0] = s.ext[0].blocks[0], s.blocks[0] }},
		// Group 0's committed test reads the block's group as well as its
		// hash: a group-0 block marked as group 1's (the hash unchanged, so
		// no other table or count sees it) is named at group 0's entry.
		{"group 0's block marked as group 1's", `slot \d+ entry 0: block \d+ does not hold`, []Group{{Kind: FullAttention}, {Kind: FullAttention}}, nil,
			func(m *Manager, s *sequence) { m.bp.index.meta[s.blocks[0]].group = 1 }},
		// Each kind's rule on its table's counts, off by one (the
		// twentieth round: M996 let a kept group release one entry, M995
		// a State group commit one page).
		{"a full-attention group with a released entry", `full group 1 has 1 released entries`,
			[]Group{{Kind: FullAttention}, {Kind: FullAttention}}, nil, func(_ *Manager, s *sequence) { s.ext[0].released = 1 }},
		{"a state group with a committed page", `state group 1 has committed pages`,
			[]Group{{Kind: FullAttention}, {Kind: State, Pages: 2}}, nil, func(_ *Manager, s *sequence) { s.ext[0].committed = 1 }},
		// The twenty-first round: a rule weakened by one (M1023, M1028)
		// let these through to a later rule's message. A State group's
		// spare list longer than its spare states (a page named twice);
		// a swapped-out window released one block past the first its next
		// query reads (window 4, 12 tokens: the query at 12 reads from
		// block 2).
		{"a spare page named twice", `group 1 keeps 7 spare pages for 3 spare states, want 6`,
			[]Group{{Kind: FullAttention}, {Kind: State, Pages: 2}},
			func(m *Manager, id SeqID) {
				require.NoError(t, m.AppendSpeculative(id, 13, 14, 15))
				require.NoError(t, m.AcceptSpeculative(id, 0))
			},
			func(_ *Manager, s *sequence) {
				require.EqualValues(t, 3, s.spares)
				s.ext[0].spare = append(s.ext[0].spare, s.ext[0].spare[0])
			}},
		{"a swapped window released past its next query", `group 1 released 3 blocks, its next query reads blocks from 2`,
			[]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}},
			func(m *Manager, id SeqID) {
				m.EndStep()
				require.NoError(t, m.SwapOut(id))
			},
			func(m *Manager, s *sequence) {
				require.Equal(t, 2, m.liveStart(1, len(s.tokens)))
				s.ext[0].released = 3
			}},
		// Audit 147 (M4113): a window table one entry longer than its 12
		// tokens' three blocks (a null entry past the released ones,
		// which the entries' rule would name next) is named by the
		// length rule.
		{"a table longer than its tokens", `group 1 \(window\) has 4 blocks for 12 tokens, want 3`,
			[]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}}, nil,
			func(_ *Manager, s *sequence) { s.ext[0].blocks = append(s.ext[0].blocks, nullBlock) }},
		// Audit 147 (M4114): with three drafts pending after 12 tokens
		// the next query is at 12 and reads from block 2 (window 4); the
		// query at 15, past the drafts, would read from block 3.
		{"a window released past its next query, with drafts", `group 1 released 3 blocks, its next query reads blocks from 2`,
			[]Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: 4}},
			func(m *Manager, id SeqID) { require.NoError(t, m.AppendSpeculative(id, 13, 14, 15)) },
			func(m *Manager, s *sequence) {
				require.Equal(t, 3, s.spec)
				require.Equal(t, 2, m.liveStart(1, len(s.tokens)-s.spec))
				require.Equal(t, 3, m.liveStart(1, len(s.tokens)))
				s.ext[0].released = 3
			}},
	})
}

// groupCorruption is a case of checkGroupCorruptions: Check must name
// the corruption by want (a regular expression) in a manager of groups
// holding one sequence of 12 tokens (a prompt of 10 and two appended),
// after setup if set.
type groupCorruption struct {
	name, want string
	groups     []Group
	setup      func(m *Manager, id SeqID)
	corrupt    func(m *Manager, s *sequence)
}

// checkGroupCorruptions runs the cases of group corruption that Check
// must name (audit 56's, audit 170's).
func checkGroupCorruptions(t *testing.T, cases []groupCorruption) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(Config{BlockSize: 4, NumBlocks: 32, HostBlocks: 32, Groups: tc.groups})
			require.NoError(t, err)
			id, _, err := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, nil)
			require.NoError(t, err)
			require.NoError(t, m.Append(id, 11, 12))
			if tc.setup != nil {
				tc.setup(m, id)
			}
			require.NoError(t, m.Check())
			s, err := m.seq(id)
			require.NoError(t, err)
			tc.corrupt(m, s)
			err = m.Check()
			require.Error(t, err)
			require.Regexp(t, tc.want, err.Error())
		})
	}
}
