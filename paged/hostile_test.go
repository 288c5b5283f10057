package paged_test

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"
	"github.com/pagedkv/pagedkv/paged"
)

// hostile is a manager in a state with one sequence of every kind, for
// calls with bad arguments: each must return its sentinel error, never
// panic, and change nothing.
type hostile struct {
	m *paged.Manager
	// full, windowed (slid past released blocks), drafted (with
	// speculative tokens), child (a fork of full), waiting (added),
	// preempted, swapped (out to the host tier; 0 without one) and freed
	// (a stale handle).
	full, windowed, drafted, child, waiting, preempted, swapped, freed paged.SeqID
}

// hostileWindow is the window of hostile.windowed.
const hostileWindow = 5

func newHostile(t *testing.T, tier bool) *hostile {
	cfg := paged.Config{BlockSize: 4, NumBlocks: 32, Events: 64, MaxModelLen: 256, MaxWaiting: 4}
	if tier {
		cfg.HostBlocks = 16
	}
	m, err := paged.New(cfg)
	require.NoError(t, err)
	h := &hostile{m: m}
	must := func(id paged.SeqID, _ int, err error) paged.SeqID {
		t.Helper()
		require.NoError(t, err)
		return id
	}
	cached := must(m.Create(seqOf(1000, 16), nil))
	require.NoError(t, m.Free(cached)) // four blocks in the prefix cache
	h.full = must(m.Create(seqOf(1, 10), nil))
	h.windowed = must(m.Create(seqOf(100, 6), &paged.SeqOptions{Window: hostileWindow}))
	for i := range 20 {
		require.NoError(t, m.Append(h.windowed, int32(200+i)))
	}
	h.drafted = must(m.Create(seqOf(300, 7), nil))
	require.NoError(t, m.AppendSpeculative(h.drafted, 1, 2, 3))
	h.child, err = m.Fork(h.full)
	require.NoError(t, err)
	h.waiting, err = m.Add(seqOf(400, 5), nil)
	require.NoError(t, err)
	h.preempted = must(m.Create(seqOf(500, 9), nil))
	require.NoError(t, m.Preempt(h.preempted))
	if tier {
		h.swapped = must(m.Create(seqOf(600, 8), nil))
		stepDone(m) // the step that computes its prompt
		require.NoError(t, m.SwapOut(h.swapped))
	}
	h.freed = must(m.Create(seqOf(700, 3), nil))
	require.NoError(t, m.Free(h.freed))
	require.NoError(t, m.Check())
	table, err := m.Table(h.windowed)
	require.NoError(t, err)
	require.Zero(t, table[0], "the window has released blocks")
	return h
}

func (h *hostile) ids() []paged.SeqID {
	return []paged.SeqID{h.full, h.windowed, h.drafted, h.child, h.waiting, h.preempted, h.swapped}
}

// hostileState is everything a caller can observe of a manager.
type hostileState struct {
	stats   paged.Stats
	seqs    []string
	pending string
}

// observe snapshots h, draining the pending events and directives, so a
// snapshot taken after a call shows those the call produced.
func (h *hostile) observe() hostileState {
	st := hostileState{stats: h.m.Stats()}
	st.pending = fmt.Sprint(h.m.DrainEvents(nil), h.m.TakeCopies(nil), h.m.TakeSwaps(nil))
	for _, id := range h.ids() {
		if id == 0 {
			continue
		}
		n, err1 := h.m.Len(id)
		r, err2 := h.m.Running(id)
		tb, err3 := h.m.Table(id)
		tk, err4 := h.m.Tokens(id)
		st.seqs = append(st.seqs, fmt.Sprint(id, n, r, tb, tk, err1, err2, err3, err4))
	}
	return st
}

// hostileCase is one bad call. admit marks calls that go through Admit,
// whose prefix statistics count failed attempts (documented).
type hostileCase struct {
	name  string
	want  error
	tier  bool
	admit bool
	setup func(t *testing.T, h *hostile)
	call  func(h *hostile) error
}

// noPanic runs f and turns a panic into a test failure.
func noPanic(t *testing.T, f func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	return f()
}

// TestHostileInput: bad input to any method of a Manager returns the
// sentinel error with the package prefix, never panics, and changes nothing
// a caller can observe: statistics, sequences, tables, tokens, pending
// events and directives; Check still passes.
func TestHostileInput(t *testing.T) {
	cases := hostileManagerCases()
	t.Logf("%d cases", len(cases))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostile(t, tc.tier)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			h.observe() // drains what the setup left pending
			before := h.observe()
			err := noPanic(t, func() error { return tc.call(h) })
			require.ErrorIs(t, err, tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "paged: "), "message %q lacks the package prefix", err)
			after := h.observe()
			if tc.admit {
				after.stats.PrefixQueries, after.stats.PrefixQueryTokens, after.stats.PrefixHitTokens = before.stats.PrefixQueries, before.stats.PrefixQueryTokens, before.stats.PrefixHitTokens
				after.stats.PrefixQueryBlocks, after.stats.PrefixHitBlocks = before.stats.PrefixQueryBlocks, before.stats.PrefixHitBlocks
				after.stats.Tiers.HostHitBlocks = before.stats.Tiers.HostHitBlocks
			}
			// A work counter: a Create refused for space has still hashed
			// its prompt.
			after.stats.BlocksHashed = before.stats.BlocksHashed
			assert.Equal(t, before, after, "a failed call changed the manager")
			require.NoError(t, h.m.Check())
		})
	}
}

// badHandles are handles of no live sequence: the zero handle, a slot never
// issued, generation 0 of a live slot, the next generation of a live slot,
// the largest handle, and a freed one.
func badHandles(h *hostile) map[string]paged.SeqID {
	return map[string]paged.SeqID{
		"zero":        0,
		"never":       paged.SeqID(1<<32 | 9999),
		"gen0":        paged.SeqID(uint64(uint32(h.full))),
		"nextgen":     h.full + 1<<32,
		"max":         paged.SeqID(math.MaxUint64),
		"freed":       h.freed,
		"slotMaxUint": paged.SeqID(1<<32 | math.MaxUint32),
	}
}

// handleOps are the methods that take a handle, each called with arguments
// that would be valid for a running sequence.
var handleOps = map[string]func(m *paged.Manager, id paged.SeqID) error{
	"Append":            func(m *paged.Manager, id paged.SeqID) error { return m.Append(id, 1) },
	"AppendMany":        func(m *paged.Manager, id paged.SeqID) error { return m.Append(id, 1, 2, 3, 4, 5) },
	"AppendSpeculative": func(m *paged.Manager, id paged.SeqID) error { return m.AppendSpeculative(id, 1) },
	"AcceptSpeculative": func(m *paged.Manager, id paged.SeqID) error { return m.AcceptSpeculative(id, 0) },
	"Truncate":          func(m *paged.Manager, id paged.SeqID) error { return m.Truncate(id, 1) },
	"Fork":              func(m *paged.Manager, id paged.SeqID) error { _, err := m.Fork(id); return err },
	"Preempt":           func(m *paged.Manager, id paged.SeqID) error { return m.Preempt(id) },
	"Free":              func(m *paged.Manager, id paged.SeqID) error { return m.Free(id) },
	"Len":               func(m *paged.Manager, id paged.SeqID) error { _, err := m.Len(id); return err },
	"Running":           func(m *paged.Manager, id paged.SeqID) error { _, err := m.Running(id); return err },
	"Table":             func(m *paged.Manager, id paged.SeqID) error { _, err := m.Table(id); return err },
	"Tokens":            func(m *paged.Manager, id paged.SeqID) error { _, err := m.Tokens(id); return err },
	"Slot":              func(m *paged.Manager, id paged.SeqID) error { _, err := m.Slot(id, 0); return err },
	"Admit":             func(m *paged.Manager, id paged.SeqID) error { _, err := m.Admit(id); return err },
	"CanAdmit":          func(m *paged.Manager, id paged.SeqID) error { _, err := m.CanAdmit(id); return err },
	"Onboard":           func(m *paged.Manager, id paged.SeqID) error { _, err := m.Onboard(id); return err },
	"SwapOut":           func(m *paged.Manager, id paged.SeqID) error { return m.SwapOut(id) },
	"SwapIn":            func(m *paged.Manager, id paged.SeqID) error { return m.SwapIn(id) },
	"Unadmit":           func(m *paged.Manager, id paged.SeqID) error { return m.Unadmit(id) },
	"CanSwapIn":         func(m *paged.Manager, id paged.SeqID) error { _, _, err := m.CanSwapIn(id); return err },
	"BuildBatch": func(m *paged.Manager, id paged.SeqID) error {
		return m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: id, NewTokens: 1}})
	},
}

func hostileManagerCases() []hostileCase {
	var cases []hostileCase
	add := func(name string, want error, call func(h *hostile) error) *hostileCase {
		cases = append(cases, hostileCase{name: name, want: want, tier: true, call: call})
		return &cases[len(cases)-1]
	}

	// Every handle-taking method with every kind of bad handle.
	probe := &hostile{} // for the names of the bad handles only
	for _, op := range slices.Sorted(maps.Keys(handleOps)) {
		for _, hk := range slices.Sorted(maps.Keys(badHandles(probe))) {
			f := handleOps[op]
			add(op+"/handle-"+hk, paged.ErrUnknownSequence, func(h *hostile) error { return f(h.m, badHandles(h)[hk]) })
		}
	}

	// Operations a sequence's state does not allow.
	type stateCase struct {
		name string
		want error
		call func(h *hostile) error
	}
	for _, sc := range []stateCase{
		{"AppendSpeculative/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.AppendSpeculative(h.waiting, 1) }},
		{"AppendSpeculative/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.AppendSpeculative(h.swapped, 1) }},
		{"Append/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.Append(h.swapped, 1) }},
		{"Append/drafts-pending", paged.ErrSequenceState, func(h *hostile) error { return h.m.Append(h.drafted, 1) }},
		{"Append/drafts-pending-many", paged.ErrSequenceState, func(h *hostile) error { return h.m.Append(h.drafted, 1, 2, 3) }},
		{"AcceptSpeculative/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.AcceptSpeculative(h.waiting, 0) }},
		{"AcceptSpeculative/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.AcceptSpeculative(h.swapped, 0) }},
		{"Truncate/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.Truncate(h.swapped, 1) }},
		{"Fork/waiting", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Fork(h.waiting); return err }},
		{"Fork/preempted", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Fork(h.preempted); return err }},
		{"Fork/swapped", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Fork(h.swapped); return err }},
		{"Preempt/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.Preempt(h.waiting) }},
		{"Preempt/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.Preempt(h.swapped) }},
		{"Slot/waiting", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Slot(h.waiting, 0); return err }},
		{"Slot/swapped", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Slot(h.swapped, 0); return err }},
		{"Admit/running", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Admit(h.full); return err }},
		{"Admit/swapped", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Admit(h.swapped); return err }},
		{"CanAdmit/running", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.CanAdmit(h.full); return err }},
		{"Onboard/running", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Onboard(h.full); return err }},
		{"Onboard/swapped", paged.ErrSequenceState, func(h *hostile) error { _, err := h.m.Onboard(h.swapped); return err }},
		{"SwapOut/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.SwapOut(h.waiting) }},
		{"SwapOut/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.SwapOut(h.swapped) }},
		{"SwapOut/group-with-waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.SwapOut(h.full, h.child, h.waiting) }},
		{"SwapIn/running", paged.ErrSequenceState, func(h *hostile) error { return h.m.SwapIn(h.full) }},
		{"Unadmit/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.Unadmit(h.waiting) }},
		{"Unadmit/preempted", paged.ErrSequenceState, func(h *hostile) error { return h.m.Unadmit(h.preempted) }},
		{"Unadmit/swapped", paged.ErrSequenceState, func(h *hostile) error { return h.m.Unadmit(h.swapped) }},
		// observe took the directives: the step that admitted it ended.
		{"Unadmit/earlier-step", paged.ErrSequenceState, func(h *hostile) error { return h.m.Unadmit(h.full) }},
		{"Unadmit/forked", paged.ErrSequenceState, func(h *hostile) error { return h.m.Unadmit(h.child) }},
		{"SwapIn/waiting", paged.ErrSequenceState, func(h *hostile) error { return h.m.SwapIn(h.waiting) }},
		{"CanSwapIn/running", paged.ErrSequenceState, func(h *hostile) error { _, _, err := h.m.CanSwapIn(h.full); return err }},
		{"BuildBatch/waiting", paged.ErrSequenceState, func(h *hostile) error {
			return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.waiting, NewTokens: 1}})
		}},
		{"BuildBatch/swapped", paged.ErrSequenceState, func(h *hostile) error {
			return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.swapped, NewTokens: 1}})
		}},
		{"ResetCache/in-use", paged.ErrCacheInUse, func(h *hostile) error { return h.m.ResetCache() }},
	} {
		add(sc.name, sc.want, sc.call)
	}

	// Out-of-range arguments.
	ints := map[string]int{"minint": math.MinInt, "neg": -1, "maxint": math.MaxInt, "huge": min(1<<40, math.MaxInt)}
	for _, k := range slices.Sorted(maps.Keys(ints)) {
		v := ints[k]
		add("Slot/pos-"+k, paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Slot(h.full, v); return err })
		add("Truncate/"+k, paged.ErrInvalid, func(h *hostile) error { return h.m.Truncate(h.full, v) })
		add("Truncate/waiting-"+k, paged.ErrInvalid, func(h *hostile) error { return h.m.Truncate(h.waiting, v) })
		add("AcceptSpeculative/"+k, paged.ErrInvalid, func(h *hostile) error { return h.m.AcceptSpeculative(h.drafted, v) })
		add("BuildBatch/newTokens-"+k, paged.ErrInvalid, func(h *hostile) error {
			return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.full, NewTokens: v}})
		})
		add("BuildBatch/stride-"+k, paged.ErrInvalid, func(h *hostile) error {
			return h.m.BuildBatch(&paged.Batch{Stride: v}, []paged.Scheduled{{ID: h.full, NewTokens: 1}})
		})
		add("BuildBatch/splitUnits-"+k, paged.ErrInvalid, func(h *hostile) error {
			return h.m.BuildBatch(&paged.Batch{SplitUnits: v}, []paged.Scheduled{{ID: h.full, NewTokens: 1}})
		})
		if v < 0 {
			add("BuildBatch/splitMinChunk-"+k, paged.ErrInvalid, func(h *hostile) error {
				return h.m.BuildBatch(&paged.Batch{SplitUnits: 2, SplitMinChunk: v}, []paged.Scheduled{{ID: h.full, NewTokens: 1}})
			})
		}
		add("AddFromHashes/numTokens-"+k, map[bool]error{true: paged.ErrInvalid, false: paged.ErrNever}[v < 0], func(h *hostile) error {
			_, err := h.m.AddFromHashes(nil, v, nil)
			return err
		})
		add("CreateFromHashes/numTokens-"+k, map[bool]error{true: paged.ErrInvalid, false: paged.ErrNever}[v < 0], func(h *hostile) error {
			_, _, err := h.m.CreateFromHashes(nil, v, nil)
			return err
		})
		add("AddFromHashes/window-numTokens-"+k, map[bool]error{true: paged.ErrInvalid, false: paged.ErrNever}[v < 0], func(h *hostile) error {
			_, err := h.m.AddFromHashes(nil, v, &paged.SeqOptions{Window: 8})
			return err
		})
		add("Add/window-"+k, paged.ErrInvalid, func(h *hostile) error {
			_, err := h.m.Add([]int32{1}, &paged.SeqOptions{Window: v})
			return err
		})
		add("Add/mm-start-"+k, paged.ErrInvalid, func(h *hostile) error {
			_, err := h.m.Add(seqOf(1, 8), &paged.SeqOptions{MM: []paged.MMRange{{Start: v, End: 4, Hash: "x"}}})
			return err
		})
		add("Add/mm-end-"+k, paged.ErrInvalid, func(h *hostile) error {
			_, err := h.m.Add(seqOf(1, 8), &paged.SeqOptions{MM: []paged.MMRange{{Start: 1, End: v, Hash: "x"}}})
			return err
		})
		add("Add/retention-priority-"+k, paged.ErrInvalid, func(h *hostile) error {
			_, err := h.m.Add([]int32{1}, &paged.SeqOptions{Retention: &paged.Retention{Priority: v}})
			return err
		})
		add("BlockHashes/mm-"+k, paged.ErrInvalid, func(h *hostile) error {
			_, err := h.m.BlockHashes(nil, seqOf(1, 8), &paged.SeqOptions{MM: []paged.MMRange{{Start: v, End: v}}})
			return err
		})
	}
	add("Truncate/window-into-released", paged.ErrInvalid, func(h *hostile) error { return h.m.Truncate(h.windowed, 6) })
	add("Truncate/window-query-reads-released", paged.ErrInvalid, func(h *hostile) error {
		table, _ := h.m.Table(h.windowed)
		released := 0
		for table[released] == 0 {
			released++
		}
		// The query at released*4+3 reads from released*4-1: released.
		return h.m.Truncate(h.windowed, released*4+hostileWindow-2)
	})
	add("Truncate/past-end", paged.ErrInvalid, func(h *hostile) error { return h.m.Truncate(h.full, 11) })
	add("Truncate/zero", paged.ErrInvalid, func(h *hostile) error { return h.m.Truncate(h.full, 0) })
	add("Slot/past-end", paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Slot(h.full, 10); return err })
	add("Slot/out-of-window", paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Slot(h.windowed, 0); return err })
	add("AcceptSpeculative/more-than-drafted", paged.ErrInvalid, func(h *hostile) error { return h.m.AcceptSpeculative(h.drafted, 4) })
	add("AcceptSpeculative/no-drafts", paged.ErrInvalid, func(h *hostile) error { return h.m.AcceptSpeculative(h.full, 1) })
	add("Admit/too-big-now", paged.ErrNoSpace, func(h *hostile) error { _, err := h.m.Admit(h.preempted); return err }).setup = func(t *testing.T, h *hostile) {
		// Fill the pool so the preempted sequence must wait.
		for {
			if _, _, err := h.m.Create(seqOf(5000, 4), nil); err != nil {
				require.ErrorIs(t, err, paged.ErrNoSpace)
				return
			}
		}
	}
	cases[len(cases)-1].admit = true

	// Token IDs and prompts.
	for name, toks := range map[string][]int32{
		"minus-one":    {-1},
		"minint32":     {math.MinInt32},
		"mixed":        {1, 2, -3, 4},
		"last":         {1, 2, 3, 4, 5, 6, 7, 8, -8},
		"block-of-neg": {-1, -2, -3, -4},
	} {
		add("Add/negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Add(toks, nil); return err })
		add("Create/negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { _, _, err := h.m.Create(toks, nil); return err })
		add("Append/negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { return h.m.Append(h.full, toks...) })
		add("Append/waiting-negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { return h.m.Append(h.waiting, toks...) })
		add("Append/windowed-negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { return h.m.Append(h.windowed, toks...) })
		add("AppendSpeculative/negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { return h.m.AppendSpeculative(h.full, toks...) })
		add("BlockHashes/negative-token-"+name, paged.ErrInvalid, func(h *hostile) error { _, err := h.m.BlockHashes(nil, toks, nil); return err })
	}
	add("Add/nil-prompt", paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Add(nil, nil); return err })
	add("Add/empty-prompt", paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Add([]int32{}, nil); return err })
	add("Create/nil-prompt", paged.ErrInvalid, func(h *hostile) error { _, _, err := h.m.Create(nil, nil); return err })
	add("Append/no-tokens", paged.ErrInvalid, func(h *hostile) error { return h.m.Append(h.full) })
	add("AppendSpeculative/no-tokens", paged.ErrInvalid, func(h *hostile) error { return h.m.AppendSpeculative(h.full) })
	add("Add/longer-than-pool", paged.ErrNever, func(h *hostile) error { _, err := h.m.Add(seqOf(1, 125), nil); return err })
	add("Create/longer-than-pool", paged.ErrNever, func(h *hostile) error { _, _, err := h.m.Create(seqOf(1, 125), nil); return err })
	add("Add/windowed-longer-than-max", paged.ErrNever, func(h *hostile) error {
		_, err := h.m.Add(seqOf(1, 257), &paged.SeqOptions{Window: 4})
		return err
	})
	add("Append/past-pool", paged.ErrNever, func(h *hostile) error { return h.m.Append(h.full, seqOf(1, 115)...) })
	add("Append/waiting-past-pool", paged.ErrNever, func(h *hostile) error { return h.m.Append(h.waiting, seqOf(1, 120)...) })
	add("Append/windowed-past-max", paged.ErrNever, func(h *hostile) error { return h.m.Append(h.windowed, seqOf(1, 231)...) })
	add("Append/no-space", paged.ErrNoSpace, func(h *hostile) error { return h.m.Append(h.full, seqOf(1, 114)...) })
	add("AppendSpeculative/no-space", paged.ErrNoSpace, func(h *hostile) error { return h.m.AppendSpeculative(h.drafted, seqOf(1, 114)...) })
	add("Create/no-space", paged.ErrNoSpace, func(h *hostile) error { _, _, err := h.m.Create(seqOf(7000, 100), nil); return err }).admit = true
	add("AddFromHashes/too-many-hashes", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.AddFromHashes(make([]paged.Hash, 3), 11, nil)
		return err
	})
	add("Add/negative-lora", paged.ErrInvalid, func(h *hostile) error { _, err := h.m.Add([]int32{1}, &paged.SeqOptions{LoRA: -1}); return err })
	add("Add/retention-ticks", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.Add([]int32{1}, &paged.SeqOptions{Retention: &paged.Retention{Priority: 50, Ticks: -1}})
		return err
	})
	add("Add/retention-101", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.Add([]int32{1}, &paged.SeqOptions{Retention: &paged.Retention{Priority: 101}})
		return err
	})
	add("Add/mm-empty-range", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.Add(seqOf(1, 8), &paged.SeqOptions{MM: []paged.MMRange{{Start: 3, End: 3}}})
		return err
	})
	add("Add/mm-second-range", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.Add(seqOf(1, 8), &paged.SeqOptions{MM: []paged.MMRange{{Start: 0, End: 4}, {Start: 6, End: 9}}})
		return err
	})
	add("Add/window-past-max", paged.ErrInvalid, func(h *hostile) error {
		_, err := h.m.Add([]int32{1}, &paged.SeqOptions{Window: 257})
		return err
	})
	add("Add/waiting-set-full", paged.ErrNoSpace, func(h *hostile) error { _, err := h.m.Add([]int32{1}, nil); return err }).setup = func(t *testing.T, h *hostile) {
		_, err := h.m.Add([]int32{2}, nil) // the fourth waiting sequence
		require.NoError(t, err)
	}
	add("AddFromHashes/waiting-set-full", paged.ErrNoSpace, func(h *hostile) error { _, err := h.m.AddFromHashes(nil, 4, nil); return err }).setup = func(t *testing.T, h *hostile) {
		_, err := h.m.AddFromHashes(nil, 4, nil)
		require.NoError(t, err)
	}

	// Batches.
	add("BuildBatch/nil", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(nil, []paged.Scheduled{{ID: h.full, NewTokens: 1}})
	})
	add("BuildBatch/nil-empty", paged.ErrInvalid, func(h *hostile) error { return h.m.BuildBatch(nil, nil) })
	add("BuildBatch/twice", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.full, NewTokens: 1}, {ID: h.child, NewTokens: 1}, {ID: h.full, NewTokens: 1}})
	})
	add("BuildBatch/past-length", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.full, NewTokens: 11}})
	})
	add("BuildBatch/zero-new", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.full, NewTokens: 0}})
	})
	add("BuildBatch/window-reads-released", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.windowed, NewTokens: 4}})
	})
	add("BuildBatch/fixed-stride-too-narrow", paged.ErrInvalid, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{Stride: 1}, []paged.Scheduled{{ID: h.full, NewTokens: 1}})
	})
	add("BuildBatch/bad-after-good", paged.ErrUnknownSequence, func(h *hostile) error {
		return h.m.BuildBatch(&paged.Batch{}, []paged.Scheduled{{ID: h.full, NewTokens: 1}, {ID: h.freed, NewTokens: 1}})
	})
	add("BuildBatch/reused-batch-bad-step", paged.ErrInvalid, func(h *hostile) error {
		var b paged.Batch
		if err := h.m.BuildBatch(&b, []paged.Scheduled{{ID: h.full, NewTokens: 1}}); err != nil {
			return err
		}
		return h.m.BuildBatch(&b, []paged.Scheduled{{ID: h.full, NewTokens: 99}})
	})

	// Groups and tiers.
	add("SwapOut/none", paged.ErrInvalid, func(h *hostile) error { return h.m.SwapOut() })
	add("SwapOut/twice-in-group", paged.ErrInvalid, func(h *hostile) error { return h.m.SwapOut(h.full, h.full) })
	add("SwapIn/none", paged.ErrInvalid, func(h *hostile) error { return h.m.SwapIn() })
	add("SwapIn/twice-in-group", paged.ErrInvalid, func(h *hostile) error { return h.m.SwapIn(h.swapped, h.swapped) })
	add("CanSwapIn/none", paged.ErrInvalid, func(h *hostile) error { _, _, err := h.m.CanSwapIn(); return err })
	add("SwapOut/host-full", paged.ErrNoSpace, func(h *hostile) error {
		return h.m.SwapOut(h.full, h.child, h.windowed, h.drafted)
	}).setup = func(t *testing.T, h *hostile) {
		// Take host blocks with a second swapped sequence.
		id, _, err := h.m.Create(seqOf(800, 40), nil)
		require.NoError(t, err)
		stepDone(h.m)
		require.NoError(t, h.m.SwapOut(id))
	}
	for _, c := range []struct {
		name string
		call func(h *hostile) error
	}{
		{"SwapOut", func(h *hostile) error { return h.m.SwapOut(h.full) }},
		{"SwapIn", func(h *hostile) error { return h.m.SwapIn(h.full) }},
		{"CanSwapIn", func(h *hostile) error { _, _, err := h.m.CanSwapIn(h.full); return err }},
		{"Onboard", func(h *hostile) error { _, err := h.m.Onboard(h.waiting); return err }},
	} {
		add(c.name+"/no-host-tier", paged.ErrNoHostTier, c.call).tier = false
	}
	return cases
}

// TestHostileConfig: every bad configuration field is refused with
// ErrInvalid naming the field, before anything large is allocated.
func TestHostileConfig(t *testing.T) {
	nilPolicy := func(int) eviction.Policy { return nil }
	ok := paged.Config{NumBlocks: 8}
	with := func(f func(*paged.Config)) paged.Config { c := ok; f(&c); return c }
	cases := map[string]struct {
		cfg   paged.Config
		field string
	}{
		"blocksize-neg":       {with(func(c *paged.Config) { c.BlockSize = -1 }), "BlockSize"},
		"blocksize-huge":      {with(func(c *paged.Config) { c.BlockSize = 1<<20 + 1 }), "BlockSize"},
		"blocksize-minint":    {with(func(c *paged.Config) { c.BlockSize = math.MinInt }), "BlockSize"},
		"numblocks-zero":      {paged.Config{}, "NumBlocks"},
		"numblocks-one":       {with(func(c *paged.Config) { c.NumBlocks = 1 }), "NumBlocks"},
		"numblocks-neg":       {with(func(c *paged.Config) { c.NumBlocks = -5 }), "NumBlocks"},
		"numblocks-max+1":     {with(func(c *paged.Config) { c.NumBlocks = paged.MaxBlocks + 1 }), "NumBlocks"},
		"numblocks-2^31-1":    {with(func(c *paged.Config) { c.NumBlocks = 1<<31 - 1 }), "NumBlocks"},
		"numblocks-maxint":    {with(func(c *paged.Config) { c.NumBlocks = math.MaxInt }), "NumBlocks"},
		"watermark-neg":       {with(func(c *paged.Config) { c.Watermark = -0.01 }), "Watermark"},
		"watermark-one":       {with(func(c *paged.Config) { c.Watermark = 1 }), "Watermark"},
		"watermark-nan":       {with(func(c *paged.Config) { c.Watermark = math.NaN() }), "Watermark"},
		"watermark-inf":       {with(func(c *paged.Config) { c.Watermark = math.Inf(1) }), "Watermark"},
		"events-neg":          {with(func(c *paged.Config) { c.Events = -1 }), "Events"},
		"events-huge":         {with(func(c *paged.Config) { c.Events = paged.MaxEvents + 1 }), "Events"},
		"events-maxint":       {with(func(c *paged.Config) { c.Events = math.MaxInt }), "Events"},
		"maxmodellen-neg":     {with(func(c *paged.Config) { c.MaxModelLen = -1 }), "MaxModelLen"},
		"maxmodellen-huge":    {with(func(c *paged.Config) { c.MaxModelLen = paged.MaxSeqLen + 1 }), "MaxModelLen"},
		"maxmodellen-maxint":  {with(func(c *paged.Config) { c.MaxModelLen = math.MaxInt }), "MaxModelLen"},
		"maxwaiting-neg":      {with(func(c *paged.Config) { c.MaxWaiting = -1 }), "MaxWaiting"},
		"hostblocks-neg":      {with(func(c *paged.Config) { c.HostBlocks = -1 }), "HostBlocks"},
		"hostblocks-huge":     {with(func(c *paged.Config) { c.HostBlocks = paged.MaxBlocks + 1 }), "HostBlocks"},
		"offloadpriority-neg": {with(func(c *paged.Config) { c.OffloadPriority = -1 }), "OffloadPriority"},
		"offloadpriority-101": {with(func(c *paged.Config) { c.OffloadPriority = 101 }), "OffloadPriority"},
		"policy-nil-result":   {with(func(c *paged.Config) { c.Policy = nilPolicy }), "Policy"},
		"hostpolicy-nil":      {with(func(c *paged.Config) { c.HostBlocks, c.HostPolicy = 4, nilPolicy }), "HostPolicy"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var m *paged.Manager
			err := noPanic(t, func() error { var err error; m, err = paged.New(tc.cfg); return err })
			require.ErrorIs(t, err, paged.ErrInvalid)
			assert.Nil(t, m)
			assert.Contains(t, err.Error(), "Config."+tc.field)
		})
	}
}

// TestHostileSplitPlan: out-of-range indexes and arguments, and plans whose
// exported fields a caller overwrote, give errors or empty answers.
func TestHostileSplitPlan(t *testing.T) {
	var built paged.SplitPlan
	require.NoError(t, built.Build([]int32{5, 0, 9}, 3, 2))
	for _, s := range []int{math.MinInt, -1, 3, 4, math.MaxInt} {
		assert.Nil(t, built.Partials(s), "Partials(%d)", s)
		var zero paged.SplitPlan
		assert.Nil(t, zero.Partials(s), "zero plan Partials(%d)", s)
	}
	var zero paged.SplitPlan
	assert.Nil(t, zero.Partials(0))
	assert.Zero(t, zero.Ideal())
	assert.Error(t, zero.Check([]int32{1}))

	for name, args := range map[string]struct {
		blocks          []int32
		units, minChunk int
	}{
		"units-zero":      {[]int32{1}, 0, 1},
		"units-neg":       {[]int32{1}, -1, 1},
		"units-huge":      {[]int32{1}, 1<<20 + 1, 1},
		"units-minint":    {[]int32{1}, math.MinInt, 1},
		"minchunk-zero":   {[]int32{1}, 2, 0},
		"minchunk-minint": {[]int32{1}, 2, math.MinInt},
		"negative-blocks": {[]int32{3, -1}, 2, 1},
		"minint32-blocks": {[]int32{math.MinInt32}, 2, 1},
	} {
		t.Run(name, func(t *testing.T) {
			p := built
			err := noPanic(t, func() error { return p.Build(args.blocks, args.units, args.minChunk) })
			require.ErrorIs(t, err, paged.ErrInvalid)
			assert.Equal(t, built.Items, p.Items, "a refused Build leaves the plan")
		})
	}
	corrupt := map[string]func(p *paged.SplitPlan){
		"units-neg":      func(p *paged.SplitPlan) { p.Units = -1 },
		"units-zero":     func(p *paged.SplitPlan) { p.Units = 0 },
		"merge-past":     func(p *paged.SplitPlan) { p.Merge[1] = 99 },
		"merge-neg":      func(p *paged.SplitPlan) { p.Merge[1] = -4 },
		"merge-down":     func(p *paged.SplitPlan) { p.Merge[1], p.Merge[2] = 2, 1 },
		"merge-short":    func(p *paged.SplitPlan) { p.Merge = p.Merge[:2] },
		"items-gone":     func(p *paged.SplitPlan) { p.Items = nil },
		"unit-past":      func(p *paged.SplitPlan) { p.Items[0].Unit = 77 },
		"unit-neg":       func(p *paged.SplitPlan) { p.Items[0].Unit = -1 },
		"item-backwards": func(p *paged.SplitPlan) { p.Items[0].End = -3 },
	}
	for name, f := range corrupt {
		t.Run("check-"+name, func(t *testing.T) {
			var p paged.SplitPlan
			require.NoError(t, p.Build([]int32{5, 0, 9}, 3, 2))
			f(&p)
			assert.Error(t, noPanic(t, func() error { return p.Check([]int32{5, 0, 9}) }))
			for s := -1; s <= 4; s++ {
				noPanic(t, func() error { _ = p.Partials(s); return nil })
			}
		})
	}
}

// TestHostilePlacement covers the Placement's methods as TestHostileInput
// covers the Manager's.
func TestHostilePlacement(t *testing.T) {
	dev := paged.Config{BlockSize: 4, NumBlocks: 9}
	for name, cfg := range map[string]paged.PlacementConfig{
		"devices-zero":    {Device: dev},
		"devices-neg":     {Device: dev, Devices: -1},
		"devices-huge":    {Device: dev, Devices: 1 << 30},
		"devices-maxint":  {Device: dev, Devices: math.MaxInt},
		"layout":          {Device: dev, Devices: 2, Layout: 9},
		"shard-neg":       {Device: dev, Devices: 2, ShardBlocks: -1},
		"shard-huge":      {Device: dev, Devices: 2, ShardBlocks: math.MaxInt},
		"maxmodellen-neg": {Device: dev, Devices: 2, MaxModelLen: -1},
		"maxmodellen-big": {Device: dev, Devices: 2, MaxModelLen: math.MaxInt},
		"device-config":   {Device: paged.Config{NumBlocks: 1}, Devices: 2},
	} {
		t.Run("new-"+name, func(t *testing.T) {
			err := noPanic(t, func() error { _, err := paged.NewPlacement(cfg); return err })
			require.ErrorIs(t, err, paged.ErrInvalid)
		})
	}

	p, err := paged.NewPlacement(paged.PlacementConfig{Device: dev, Devices: 3, ShardBlocks: 2})
	require.NoError(t, err)
	live, err := p.Create(seqTokens(10, 1), 2)
	require.NoError(t, err)
	freed, err := p.Create(seqTokens(3, 1), 1)
	require.NoError(t, err)
	require.NoError(t, p.Free(freed))
	observe := func() string {
		n, _ := p.Len(live)
		sh, _ := p.Shards(live)
		var tables []allocator.BlockID
		for s := range sh {
			tb, _ := p.Table(live, s)
			tables = append(tables, tb...)
		}
		var stats []paged.Stats
		for _, d := range p.Devices() {
			stats = append(stats, d.Stats())
		}
		return fmt.Sprint(n, sh, tables, stats)
	}
	for name, tc := range map[string]struct {
		want error
		call func() error
	}{
		"create-ways-zero":      {paged.ErrInvalid, func() error { _, err := p.Create([]int32{1}, 0); return err }},
		"create-ways-neg":       {paged.ErrInvalid, func() error { _, err := p.Create([]int32{1}, -1); return err }},
		"create-ways-many":      {paged.ErrInvalid, func() error { _, err := p.Create([]int32{1}, 4); return err }},
		"create-empty":          {paged.ErrInvalid, func() error { _, err := p.Create(nil, 1); return err }},
		"create-negative-token": {paged.ErrInvalid, func() error { _, err := p.Create([]int32{1, -2}, 2); return err }},
		"create-too-long":       {paged.ErrNever, func() error { _, err := p.Create(seqTokens(40, 1), 3); return err }},
		"append-unknown":        {paged.ErrUnknownSequence, func() error { return p.Append(freed, 1) }},
		"append-zero-handle":    {paged.ErrUnknownSequence, func() error { return p.Append(0, 1) }},
		"append-empty":          {paged.ErrInvalid, func() error { return p.Append(live) }},
		"append-negative-token": {paged.ErrInvalid, func() error { return p.Append(live, 5, -5) }},
		"append-too-long":       {paged.ErrNever, func() error { return p.Append(live, seqTokens(7, 1)...) }},
		"free-twice":            {paged.ErrUnknownSequence, func() error { return p.Free(freed) }},
		"len-unknown":           {paged.ErrUnknownSequence, func() error { _, err := p.Len(paged.SeqID(math.MaxUint64)); return err }},
		"shards-unknown":        {paged.ErrUnknownSequence, func() error { _, err := p.Shards(freed); return err }},
		"table-unknown":         {paged.ErrUnknownSequence, func() error { _, err := p.Table(freed, 0); return err }},
		"table-shard-neg":       {paged.ErrInvalid, func() error { _, err := p.Table(live, -1); return err }},
		"table-shard-past":      {paged.ErrInvalid, func() error { _, err := p.Table(live, 2); return err }},
		"slot-unknown":          {paged.ErrUnknownSequence, func() error { _, _, err := p.Slot(freed, 0); return err }},
		"slot-neg":              {paged.ErrInvalid, func() error { _, _, err := p.Slot(live, -1); return err }},
		"slot-past":             {paged.ErrInvalid, func() error { _, _, err := p.Slot(live, 10); return err }},
		"slot-minint":           {paged.ErrInvalid, func() error { _, _, err := p.Slot(live, math.MinInt); return err }},
		"batch-nil":             {paged.ErrInvalid, func() error { return p.BuildBatch(nil, []paged.Scheduled{{ID: live, NewTokens: 1}}) }},
		"batch-unknown": {paged.ErrUnknownSequence, func() error {
			return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: freed, NewTokens: 1}})
		}},
		"batch-zero-new": {paged.ErrInvalid, func() error { return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: live}}) }},
		"batch-past-length": {paged.ErrInvalid, func() error {
			return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: live, NewTokens: 11}})
		}},
		"batch-new-tokens-neg": {paged.ErrInvalid, func() error {
			return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: live, NewTokens: -1}})
		}},
		"batch-twice": {paged.ErrInvalid, func() error {
			return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: live, NewTokens: 1}, {ID: live, NewTokens: 1}})
		}},
		"batch-new-tokens-maxed": {paged.ErrInvalid, func() error {
			return p.BuildBatch(&paged.PlacementBatch{}, []paged.Scheduled{{ID: live, NewTokens: math.MaxInt}})
		}},
	} {
		t.Run(name, func(t *testing.T) {
			before := observe()
			err := noPanic(t, tc.call)
			require.ErrorIs(t, err, tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "paged: "), "message %q lacks the package prefix", err)
			assert.Equal(t, before, observe())
			require.NoError(t, p.Check())
		})
	}
}

// TestHostileEdges: calls that have no error to return take any argument
// without panicking.
func TestHostileEdges(t *testing.T) {
	h := newHostile(t, true)
	for _, n := range []int{math.MinInt, -1, 0, 1, 124, 125, math.MaxInt} {
		a := noPanicAdmission(t, func() paged.Admission { return h.m.CanAdmitTokens(n) })
		if n < 1 || n > 124 {
			assert.Equal(t, paged.AdmitNever, a, "CanAdmitTokens(%d)", n)
		}
	}
	for _, now := range []int64{math.MinInt64, -1, 0, math.MaxInt64, 5} {
		noPanic(t, func() error { h.m.Advance(now); return nil })
	}
	// A retention that lasts beyond the end of time does not wrap into the
	// past.
	id, _, err := h.m.Create(seqOf(9000, 8), &paged.SeqOptions{Retention: &paged.Retention{Priority: 90, Ticks: math.MaxInt64}})
	require.NoError(t, err)
	require.NoError(t, h.m.Free(id))
	require.NoError(t, h.m.Check())
	var parent paged.Hash
	for _, hs := range []paged.Hasher{paged.NewSHA256Hasher(), &paged.SHA256Hasher{}, paged.FastHasher{}} {
		got := hs.Sum(nil, []int32{1, 2}, nil)
		assert.Equal(t, hs.Sum(&parent, []int32{1, 2}, nil), got, "%T: a nil parent is the zero hash", hs)
	}
	for _, k := range []paged.SwapKind{0, 99} {
		assert.NotEmpty(t, k.String())
	}
	assert.NotEmpty(t, paged.EventKind(0).String())
	assert.NotEmpty(t, paged.Admission(9).String())
	assert.NotEmpty(t, paged.Layout(9).String())
	assert.NotEmpty(t, paged.SeqID(math.MaxUint64).String())
	assert.Zero(t, paged.Stats{}.HitRate())
	assert.Zero(t, paged.Stats{}.Usage())
	require.NoError(t, h.m.Check())
}

func noPanicAdmission(t *testing.T, f func() paged.Admission) (a paged.Admission) {
	t.Helper()
	_ = noPanic(t, func() error { a = f(); return nil })
	return a
}
