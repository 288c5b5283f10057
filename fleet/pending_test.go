package fleet

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

func pendingHashes(from, n int) []paged.Hash {
	hs := make([]paged.Hash, n)
	for i := range hs {
		hs[i][0], hs[i][1], hs[i][31] = byte(from+i), byte((from+i)>>8), 0x5a
	}
	return hs
}

// runs returns Extend's Blocks and Pending for servers 0..n-1 whose
// indexed runs are base.
func extendRuns(p *Pending, hs []paged.Hash, base []int) (blocks, pending []int) {
	sc := make([]Score, len(base))
	for i := range sc {
		sc[i] = Score{Server: ServerID(i), Blocks: base[i], Device: base[i], Value: float64(base[i])}
	}
	p.Extend(hs, sc)
	for i := range sc {
		blocks = append(blocks, sc[i].Blocks)
		pending = append(pending, sc[i].Pending)
		if sc[i].Device != sc[i].Blocks || sc[i].Value != float64(sc[i].Blocks) {
			panic("Extend left Device or Value behind Blocks")
		}
	}
	return blocks, pending
}

func TestPendingExtend(t *testing.T) {
	req := pendingHashes(0, 8)
	type add struct {
		server   ServerID
		from, to int
	}
	cases := []struct {
		name        string
		adds        []add
		observe     []paged.Event // from server 0
		forget      *add
		base        []int
		wantBlocks  []int
		wantPending []int
	}{
		{name: "nothing pending", base: []int{0, 2}, wantBlocks: []int{0, 2}, wantPending: []int{0, 0}},
		{name: "whole prompt pending on 1", adds: []add{{1, 0, 8}}, base: []int{0, 0}, wantBlocks: []int{0, 8}, wantPending: []int{0, 8}},
		{name: "pending continues the indexed run", adds: []add{{0, 3, 6}}, base: []int{3, 0}, wantBlocks: []int{6, 0}, wantPending: []int{3, 0}},
		{name: "pending after a hole does not count", adds: []add{{0, 4, 8}}, base: []int{2, 0}, wantBlocks: []int{2, 0}, wantPending: []int{0, 0}},
		{name: "two servers, two runs", adds: []add{{0, 0, 2}, {1, 0, 5}}, base: []int{0, 0}, wantBlocks: []int{2, 5}, wantPending: []int{2, 5}},
		{name: "stored events end the claim", adds: []add{{0, 0, 8}},
			observe: []paged.Event{{Seq: 1, Kind: paged.BlockStored, Hashes: req[:3]}},
			base:    []int{3, 0}, wantBlocks: []int{8, 0}, wantPending: []int{5, 0}},
		{name: "a removed block ends the claim", adds: []add{{0, 0, 8}},
			observe: []paged.Event{{Seq: 1, Kind: paged.BlockRemoved, Hashes: req[2:3]}},
			base:    []int{0, 0}, wantBlocks: []int{2, 0}, wantPending: []int{2, 0}},
		{name: "cleared ends every claim of the server", adds: []add{{0, 0, 8}, {1, 0, 4}},
			observe: []paged.Event{{Seq: 1, Kind: paged.AllBlocksCleared}},
			base:    []int{0, 0}, wantBlocks: []int{0, 4}, wantPending: []int{0, 4}},
		{name: "forget", adds: []add{{0, 0, 8}, {1, 0, 8}}, forget: &add{1, 0, 8},
			base: []int{0, 0}, wantBlocks: []int{8, 0}, wantPending: []int{8, 0}},
		{name: "index run beyond the request", adds: []add{{0, 0, 8}}, base: []int{8, 9}, wantBlocks: []int{8, 9}, wantPending: []int{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPending(PendingConfig{MaxServers: 2})
			require.NoError(t, err)
			for _, a := range tc.adds {
				require.NoError(t, p.Add(a.server, req[a.from:a.to]))
			}
			require.NoError(t, p.Observe(0, tc.observe))
			if tc.forget != nil {
				require.NoError(t, p.Forget(tc.forget.server, req[tc.forget.from:tc.forget.to]))
			}
			blocks, pending := extendRuns(p, req, tc.base)
			assert.Equal(t, tc.wantBlocks, blocks, "blocks")
			assert.Equal(t, tc.wantPending, pending, "pending")
		})
	}
}

func TestPendingTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(100, 0)}
	p, err := NewPending(PendingConfig{MaxServers: 1, TTL: 10 * time.Second, Now: clk.now})
	require.NoError(t, err)
	req := pendingHashes(0, 4)
	require.NoError(t, p.Add(0, req))
	clk.t = clk.t.Add(6 * time.Second)
	require.NoError(t, p.Add(0, req[:2])) // refreshes the first two
	clk.t = clk.t.Add(5 * time.Second)    // 11 s after the first Add
	blocks, _ := extendRuns(p, req, []int{0})
	assert.Equal(t, []int{2}, blocks, "the refreshed blocks live on")
	assert.Equal(t, 2, p.Len())
	clk.t = clk.t.Add(5 * time.Second)
	blocks, _ = extendRuns(p, req, []int{0})
	assert.Equal(t, []int{0}, blocks)
	assert.Zero(t, p.Len())
}

func TestPendingCapacity(t *testing.T) {
	p, err := NewPending(PendingConfig{Capacity: 4, MaxServers: 2})
	require.NoError(t, err)
	req := pendingHashes(0, 10)
	require.NoError(t, p.Add(0, req[:4]))
	assert.Equal(t, 4, p.Len())
	require.NoError(t, p.Add(1, req[:4])) // same hashes: records recycle, hashes stay
	assert.LessOrEqual(t, p.Len(), 4)
	require.NoError(t, p.Add(1, req[4:10])) // the oldest claims go
	assert.Equal(t, 4, p.Len())
	blocks, _ := extendRuns(p, req[6:], []int{0, 0})
	assert.Equal(t, []int{0, 4}, blocks, "the newest claims are kept")
	// Adding the same hash over and over keeps one entry.
	for range 20 {
		require.NoError(t, p.Add(0, req[:1]))
	}
	assert.LessOrEqual(t, p.Len(), 4)
	blocks, _ = extendRuns(p, req, []int{0, 0})
	assert.Equal(t, 1, blocks[0])
}

func TestPendingRejectsBadInput(t *testing.T) {
	for _, cfg := range []PendingConfig{
		{Capacity: -1}, {Capacity: MaxPendingCapacity + 1}, {MaxServers: -1}, {MaxServers: maxServersLimit + 1},
		{TTL: -time.Second}, {DeviceWeight: -1}, {Capacity: MaxPendingCapacity, MaxServers: maxServersLimit}, {DeviceWeight: math.Inf(1)}, {DeviceWeight: math.NaN()},
	} {
		_, err := NewPending(cfg)
		assert.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
	}
	p, err := NewPending(PendingConfig{MaxServers: 2})
	require.NoError(t, err)
	req := pendingHashes(0, 3)
	assert.ErrorIs(t, p.Add(2, req), ErrInvalid)
	assert.ErrorIs(t, p.Observe(7, nil), ErrInvalid)
	assert.ErrorIs(t, p.Forget(1<<20, req), ErrInvalid)
	assert.Zero(t, p.Len(), "a refused call changes nothing")
	// Scores of unknown servers, runs out of range, empty requests and
	// events naming unknown blocks are ignored.
	require.NoError(t, p.Add(0, req))
	require.NoError(t, p.Observe(0, []paged.Event{{Kind: paged.BlockStored, Hashes: pendingHashes(100, 3)}, {Kind: paged.EventKind(99)}}))
	sc := []Score{{Server: 9}, {Server: 0, Blocks: -3}, {Server: 1, Blocks: 50}}
	p.Extend(req, sc)
	assert.Equal(t, []int{0, -3, 50}, []int{sc[0].Blocks, sc[1].Blocks, sc[2].Blocks})
	p.Extend(nil, sc)
	require.NoError(t, p.Add(0, nil))
}

// checkPendingModel drives Pending with the operations next draws and
// compares it with a map of claims: Extend never reports a claim the
// model does not have, and without capacity pressure it reports every
// live claim that continues the run.
func checkPendingModel(t *testing.T, capacity, steps int, next func(n int) int) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	const servers = 3
	p, err := NewPending(PendingConfig{Capacity: capacity, MaxServers: servers, TTL: 5 * time.Second, Now: clk.now})
	require.NoError(t, err)
	type claim struct {
		s ServerID
		h paged.Hash
	}
	model := map[claim]bool{}
	points := map[claim]bool{}             // claims that are hit points
	deadline := map[paged.Hash]time.Time{} // TTL after the hash's last Add
	hs := pendingHashes(0, 24)
	evicted := false // capacity pressure: claims may be missing
	var records []time.Time
	for step := range steps {
		// An expired hash loses every server's claim: a later Add does
		// not revive them.
		for h, d := range deadline {
			if !clk.t.Before(d) {
				delete(deadline, h)
				for s := range ServerID(servers) {
					delete(model, claim{s, h})
					delete(points, claim{s, h})
				}
			}
		}
		s := ServerID(next(servers))
		a, b := next(len(hs)), next(len(hs))
		a, b = min(a, b), max(a, b)
		switch op := next(8); op {
		case 0, 1, 6, 7:
			// Add, or a request leaving a hit only at one of its blocks
			// (Claim on a server with a State group), or Claim itself.
			point := -1
			if op == 6 {
				point = next(b - a + 1)
			}
			if op == 7 {
				// Claim of request hs[:b] given a score of a blocks (some
				// pending), an affinity and a layout with a State group
				// or without.
				pend, aff := next(a+1), a+next(len(hs)-a+1)
				state := next(2) == 1
				l := Layout{BlockSize: 4, Groups: []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 4}}}
				if state {
					l.Groups[1] = paged.Group{Kind: paged.State}
				}
				require.NoError(t, p.Claim(s, hs[:b], Score{Blocks: a, Pending: pend, Affinity: aff}, l))
				from := min(a-pend, b)
				if state {
					// Only the branch point, where the affinity run
					// stops before the request ends, past the hit.
					point = -2
					if aff > a && aff < b && aff > from {
						point = aff - 1 - from
					}
				}
				a = from
			}
			if a >= b {
				break
			}
			if op != 7 {
				require.NoError(t, p.add(s, hs[a:b], point))
			}
			for i, h := range hs[a:b] {
				model[claim{s, h}] = true
				if point == -1 || i == point {
					points[claim{s, h}] = true
				}
				deadline[h] = clk.t.Add(5 * time.Second)
			}
			// The record keeps Capacity Adds of a hash, expired ones
			// aside; past that, claims may be missing.
			kept := records[:0]
			for _, d := range records {
				if clk.t.Before(d) {
					kept = append(kept, d)
				}
			}
			records = kept
			for range b - a {
				records = append(records, clk.t.Add(5*time.Second))
			}
			evicted = evicted || len(records) > capacity
		case 2:
			require.NoError(t, p.Observe(s, []paged.Event{{Kind: paged.BlockStored, Hashes: hs[a:b]}}))
			for _, h := range hs[a:b] {
				delete(model, claim{s, h})
				delete(points, claim{s, h})
			}
		case 3:
			require.NoError(t, p.Forget(s, hs[a:b]))
			for _, h := range hs[a:b] {
				delete(model, claim{s, h})
				delete(points, claim{s, h})
			}
		case 4:
			clk.t = clk.t.Add(time.Duration(next(1500)) * time.Millisecond)
		case 5:
			sc := make([]Score, servers)
			aff := make([]int, servers) // the lookup's affinity: a, or past it
			for i := range sc {
				aff[i] = a
				if next(2) == 1 {
					aff[i] += next(len(hs) - a + 1)
				}
				sc[i] = Score{Server: ServerID(i), Blocks: a, Affinity: aff[i]}
			}
			p.Extend(hs, sc)
			live := func(c claim, set map[claim]bool) bool { return set[c] && clk.t.Before(deadline[c.h]) }
			for i := range sc {
				s := ServerID(i)
				if sc[i].Blocks > sc[i].Affinity {
					t.Fatalf("step %d: server %d extended to %d blocks, past its affinity %d", step, i, sc[i].Blocks, sc[i].Affinity)
				}
				// Affinity continues the lookup's own by live claims
				// (from the hit's run when it was the hit).
				k := aff[i]
				require.GreaterOrEqual(t, sc[i].Affinity, aff[i], "step %d: server %d's affinity shrank", step, i)
				for ; k < sc[i].Affinity; k++ {
					require.True(t, live(claim{s, hs[k]}, model), "step %d: server %d block %d claimed without a live claim", step, i, k)
				}
				if !evicted && k < len(hs) {
					require.False(t, live(claim{s, hs[k]}, model),
						"step %d: server %d's affinity stops at block %d though it has a live claim (from %d)", step, i, k, aff[i])
				}
				k = a
				for ; k < sc[i].Blocks; k++ {
					require.True(t, live(claim{s, hs[k]}, model), "step %d: server %d block %d scored without a live claim", step, i, k)
				}
				// The end of the hit's run of claims.
				for k < len(hs) && live(claim{s, hs[k]}, model) {
					k++
				}
				if sc[i].Blocks > a {
					require.True(t, live(claim{s, hs[sc[i].Blocks-1]}, points), "step %d: server %d scored %d blocks, not ending at a hit point", step, i, sc[i].Blocks)
				}
				if evicted {
					continue
				}
				// Extend may stop at no live hit point of the model's run.
				for j := sc[i].Blocks; j < k; j++ {
					require.False(t, live(claim{s, hs[j]}, points), "step %d: server %d scored %d blocks, but its claims go on to a hit point after block %d", step, i, sc[i].Blocks, j)
				}
			}
		}
		require.LessOrEqual(t, p.Len(), capacity)
	}
}

// TestPendingModel runs the model check with a small capacity (claims
// are evicted) and a large one (every claim is kept).
func TestPendingModel(t *testing.T) {
	for _, capacity := range []int{16, 1024} {
		state := uint64(capacity)
		checkPendingModel(t, capacity, 4000, func(n int) int {
			state = state*6364136223846793005 + 1442695040888963407
			return int(state>>33) % n
		})
	}
}

// FuzzPendingModel runs the model check on operations read from the
// fuzzer's bytes.
func FuzzPendingModel(f *testing.F) {
	f.Add([]byte{0, 1, 3, 10, 5, 0, 0, 20, 2, 1, 2, 6, 5, 1, 0, 24, 4, 200, 5})
	f.Add([]byte{1, 0, 0, 23, 1, 2, 5, 9, 3, 0, 0, 23, 5, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		next := func(n int) int {
			if i >= len(data) {
				return 0
			}
			i++
			return int(data[i-1]) % n
		}
		for _, capacity := range []int{4, 64} {
			i = 0
			checkPendingModel(t, capacity, len(data)/2, next)
		}
	})
}

func TestPendingAllocatesNothing(t *testing.T) {
	p, err := NewPending(PendingConfig{Capacity: 1 << 10, MaxServers: 8})
	require.NoError(t, err)
	req := pendingHashes(0, 64)
	sc := make([]Score, 8)
	p.Extend(req, sc)
	allocs := testing.AllocsPerRun(200, func() {
		for i := range sc {
			sc[i] = Score{Server: ServerID(i), Blocks: 8 * i}
		}
		_ = p.Add(3, req[24:])
		p.Extend(req, sc)
		_ = p.Observe(3, []paged.Event{{Kind: paged.BlockStored, Hashes: req[24:40]}})
	})
	assert.Zero(t, allocs)
	assert.Equal(t, 64, sc[3].Blocks)
}

// TestPendingFullRingKeepsTheHash: when the ring is full and its oldest
// record is the very hash being added again, the hash is dropped and
// added anew, not lost.
func TestPendingFullRingKeepsTheHash(t *testing.T) {
	p, err := NewPending(PendingConfig{Capacity: 2, MaxServers: 1})
	require.NoError(t, err)
	req := pendingHashes(0, 2)
	require.NoError(t, p.Add(0, req)) // ring: h0, h1 (full)
	require.NoError(t, p.Add(0, req)) // h0's record is the oldest
	blocks, _ := extendRuns(p, req, []int{0})
	assert.Equal(t, []int{2}, blocks)
	assert.Equal(t, 2, p.Len())
}

// TestPendingConcurrent runs Add, Observe, Extend and Forget from several
// goroutines (run with -race).
func TestPendingConcurrent(t *testing.T) {
	p, err := NewPending(PendingConfig{Capacity: 64, MaxServers: 4})
	require.NoError(t, err)
	req := pendingHashes(0, 32)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			s := ServerID(g)
			sc := make([]Score, 4)
			for i := range 300 {
				a := i % 16
				_ = p.Add(s, req[a:a+16])
				for k := range sc {
					sc[k] = Score{Server: ServerID(k)}
				}
				p.Extend(req, sc)
				_ = p.Observe(s, []paged.Event{{Kind: paged.BlockStored, Hashes: req[a : a+4]}})
				_ = p.Forget(s, req[a+8:a+10])
			}
		}()
	}
	for range 4 {
		<-done
	}
	assert.LessOrEqual(t, p.Len(), 64)
}

// TestBadInputPendingNegativeServer: a negative ServerID is refused by
// Add, Observe and Forget (it used to pass the bound check and set
// another server's bit, or index before the arrays), and Extend skips a
// score naming one, as it skips a server out of range.
func TestBadInputPendingNegativeServer(t *testing.T) {
	p, err := NewPending(PendingConfig{MaxServers: 128})
	require.NoError(t, err)
	req := pendingHashes(0, 3)
	require.NoError(t, p.Add(1, req[:2]))
	for _, s := range []ServerID{-1, -63, -64, -65, -200, math.MinInt32} {
		assert.ErrorIs(t, p.Add(s, req), ErrInvalid, "Add(%d)", s)
		assert.ErrorIs(t, p.Observe(s, []paged.Event{{Kind: paged.AllBlocksCleared}}), ErrInvalid, "Observe(%d)", s)
		assert.ErrorIs(t, p.Forget(s, req), ErrInvalid, "Forget(%d)", s)
		assert.Equal(t, 2, p.Len(), "a refused call changes nothing")
		sc := []Score{{Server: s}, {Server: 1}, {Server: 63}, {Server: 127}}
		assert.NotPanics(t, func() { p.Extend(req, sc) })
		assert.Equal(t, []int{0, 2, 0, 0}, []int{sc[0].Blocks, sc[1].Blocks, sc[2].Blocks, sc[3].Blocks},
			"Extend credits no server for a negative ID")
	}
}

// TestBadInputPendingZeroValue: the zero Pending holds nothing: Len is 0,
// Extend leaves scores alone, and Add, Observe and Forget are refused
// with ErrInvalid (no server is in range). Len and Extend used to call its
// nil clock.
func TestBadInputPendingZeroValue(t *testing.T) {
	var p Pending
	hs := pendingHashes(0, 2)
	assert.ErrorIs(t, p.Add(0, hs), ErrInvalid)
	assert.ErrorIs(t, p.Observe(0, nil), ErrInvalid)
	assert.ErrorIs(t, p.Forget(0, hs), ErrInvalid)
	assert.Zero(t, p.Len())
	sc := []Score{{Server: 0, Blocks: 1}}
	p.Extend(hs, sc)
	assert.Equal(t, []Score{{Server: 0, Blocks: 1}}, sc)
}

// TestPendingForgetServer: ForgetServer ends one server's claims and no
// other's, and refuses a server outside the record. Without it, a server
// ID the Index gives to a new name kept the old server's claims until
// their TTL.
func TestPendingForgetServer(t *testing.T) {
	p, err := NewPending(PendingConfig{MaxServers: 2})
	require.NoError(t, err)
	req := pendingHashes(0, 4)
	require.NoError(t, p.Add(0, req))
	require.NoError(t, p.Add(1, req[:2]))
	require.NoError(t, p.ForgetServer(0))
	_, pending := extendRuns(p, req, []int{0, 0})
	assert.Equal(t, []int{0, 2}, pending)
	assert.Equal(t, 2, p.Len())
	require.NoError(t, p.ForgetServer(0)) // nothing left: no change
	require.NoError(t, p.ForgetServer(1))
	assert.Zero(t, p.Len())
	require.ErrorIs(t, p.ForgetServer(2), ErrInvalid)
	require.ErrorIs(t, p.ForgetServer(-1), ErrInvalid)
}
