package fleet

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// Audit 37: hostile input mixed into random sequences of Index and
// Pending calls, and the exported helpers at the ends of their ranges.
// TestHostileIndex (hostile_test.go) makes each hostile call from one
// fixed index; here they meet the states random use reaches (servers
// unregistered and their IDs reused, layouts set, resyncs, expiry). No
// call may panic, every error wraps one of this package's sentinels and
// starts "fleet: ", and a refused call leaves what the index shows
// (servers, stats, the scores of a probe) as it was.

var audit37Names = []string{"a", "b", "c", "", "\x00", strings.Repeat("z", 300)}

func audit37Hashes(r *rand.Rand) []paged.Hash {
	switch r.IntN(8) {
	case 0:
		return nil
	case 1:
		return []paged.Hash{}
	case 2:
		return hs(1, 1, 1) // duplicates
	}
	out := make([]paged.Hash, r.IntN(5))
	for i := range out {
		out[i] = h(1 + r.IntN(8))
	}
	return out
}

func audit37Event(r *rand.Rand, seq uint64) paged.Event {
	ev := paged.Event{Seq: seq, Kind: paged.EventKind(1 + r.IntN(4)), Hashes: audit37Hashes(r), Medium: paged.Medium(r.IntN(2))}
	if ev.Kind == paged.BlockMoved {
		ev.From = paged.Medium(r.IntN(2))
	}
	switch r.IntN(20) {
	case 0:
		ev.Kind = []paged.EventKind{0, 5, 255}[r.IntN(3)]
	case 1:
		ev.Medium = []paged.Medium{2, 255}[r.IntN(2)]
	case 2:
		ev.From = 7
	case 3:
		ev.Group = []int{-1, 1, 300, math.MaxInt, math.MinInt}[r.IntN(5)]
	case 4:
		ev.BlockSize = []int{-1, 0, 3, math.MaxInt}[r.IntN(4)]
	}
	return ev
}

var audit37Layouts = []string{"", "16", "16:full", "16:full,window=32", "16:full,state", "0:full", "-1:full", "16:window=-1", "16:bogus", "x", "16:full,shared=9", "16:shared=0"}

func audit37Known(err error) bool {
	for _, s := range []error{ErrInvalid, ErrTooManyServers, ErrUnknownServer, ErrConflict} {
		if errors.Is(err, s) {
			return strings.HasPrefix(err.Error(), "fleet: ")
		}
	}
	return false
}

func TestAudit37HostileIndex(t *testing.T) {
	refused := 0
	for seed := range uint64(400) {
		refused += audit37Index(t, seed)
		if t.Failed() {
			return
		}
	}
	t.Logf("400 seeds, %d refused calls", refused)
}

func audit37Index(t *testing.T, seed uint64) (refused int) {
	r := rand.New(rand.NewPCG(seed, 37))
	clk := &fakeClock{t: time.Unix(1000, 0)}
	m, err := NewMemory(MemoryConfig{Capacity: 4 + r.IntN(16)})
	if err != nil {
		t.Fatal(err)
	}
	x, err := New(Config{MaxServers: 1 + r.IntN(3), TTL: time.Duration(1+r.IntN(100)) * time.Second, Now: clk.now, Backend: m})
	if err != nil {
		t.Fatal(err)
	}
	pend, err := NewPending(PendingConfig{Capacity: 1 + r.IntN(8), MaxServers: 3, TTL: time.Duration(1+r.IntN(50)) * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	seq := map[string]uint64{}
	var log []string
	defer func() {
		if e := recover(); e != nil {
			t.Fatalf("seed %d: panic %v\n%s\ncalls:\n%s", seed, e, debug.Stack(), strings.Join(log, "\n"))
		}
	}()
	view := func() string {
		servers, err := x.Servers(nil)
		if err != nil {
			t.Fatalf("seed %d: Servers: %v", seed, err)
		}
		sc, err := x.Lookup(hs(1, 2, 3, 4, 5, 6, 7, 8), nil)
		if err != nil {
			t.Fatalf("seed %d: Lookup: %v", seed, err)
		}
		st := x.Stats()
		st.Lookups = 0 // the probe's own
		return fmt.Sprintf("%+v\n%+v\n%+v", servers, st, sc)
	}
	for it := 0; it < 150; it++ {
		name := audit37Names[r.IntN(len(audit37Names))]
		if r.IntN(3) != 0 {
			name = audit37Names[r.IntN(3)]
		}
		before := view()
		var call string
		var err error
		switch r.IntN(10) {
		case 0, 1, 2:
			evs := make([]paged.Event, r.IntN(4))
			for i := range evs {
				seq[name]++
				s := seq[name]
				if r.IntN(12) == 0 {
					s = []uint64{0, 1, math.MaxUint64, s - 1, s + 5}[r.IntN(5)]
				}
				evs[i] = audit37Event(r, s)
			}
			if r.IntN(10) == 0 {
				evs = nil
			}
			call = fmt.Sprintf("Apply(%q, %+v)", name, evs)
			err = x.Apply(name, evs)
			if err == nil {
				_ = pend.Observe(ServerID(r.IntN(3)), evs)
			}
		case 3:
			call = fmt.Sprintf("Register(%q)", name)
			_, err = x.Register(name)
		case 4:
			call = fmt.Sprintf("Heartbeat(%q)", name)
			err = x.Heartbeat(name)
		case 5:
			var snap *paged.Snapshot
			if r.IntN(4) != 0 {
				snap = &paged.Snapshot{Seq: []uint64{0, 1, seq[name], math.MaxUint64}[r.IntN(4)], BlockSize: []int{16, 0, -1, math.MaxInt}[r.IntN(4)]}
				for range r.IntN(4) {
					snap.Blocks = append(snap.Blocks, paged.CachedBlock{Hash: h(1 + r.IntN(8)), Medium: paged.Medium(r.IntN(3)), Group: r.IntN(3) - 1})
				}
			}
			call = fmt.Sprintf("Resync(%q, %+v)", name, snap)
			err = x.Resync(name, snap)
			if err == nil && snap != nil {
				seq[name] = snap.Seq
			}
		case 6:
			ls := audit37Layouts[r.IntN(len(audit37Layouts))]
			l, perr := ParseLayout(ls)
			if perr != nil && !audit37Known(perr) {
				t.Fatalf("seed %d: ParseLayout(%q): unknown error %v", seed, ls, perr)
			}
			if r.IntN(5) == 0 {
				l = Layout{BlockSize: []int{-1, 0, math.MaxInt}[r.IntN(3)], Groups: []paged.Group{{Kind: paged.GroupKind(r.IntN(8))}}}
			}
			call = fmt.Sprintf("SetLayout(%q, %+v)", name, l)
			err = x.SetLayout(name, l)
			_, _ = x.Layout(name)
		case 7:
			call = fmt.Sprintf("Unregister(%q)", name)
			err = x.Unregister(name)
			if err == nil {
				delete(seq, name)
			}
		case 8:
			call = "Lookup+Pending"
			hashes := audit37Hashes(r)
			sc, lerr := x.Lookup(hashes, nil)
			if lerr != nil {
				t.Fatalf("seed %d: Lookup(%v): %v", seed, hashes, lerr)
			}
			pend.Extend(hashes, sc)
			for _, s := range sc {
				if s.Blocks < 0 || s.Pending < 0 || s.Pending > s.Blocks || s.Device > s.Blocks || s.Blocks > len(hashes) || math.IsNaN(s.Value) {
					t.Fatalf("seed %d: Lookup+Extend score %+v for %d hashes", seed, s, len(hashes))
				}
			}
			srv := ServerID(r.IntN(3))
			if r.IntN(6) == 0 {
				srv = []ServerID{-1, 3, 64, math.MaxInt32, math.MinInt32}[r.IntN(5)]
			}
			plen := pend.Len()
			var perr error
			switch r.IntN(5) {
			case 0:
				perr = pend.Add(srv, hashes)
			case 1:
				var s Score
				if len(sc) > 0 {
					s = sc[r.IntN(len(sc))]
				}
				if r.IntN(4) == 0 {
					s.Blocks, s.Pending = []int{-1, 0, 3, math.MaxInt}[r.IntN(4)], []int{-1, 0, 2, math.MinInt}[r.IntN(4)]
				}
				perr = pend.Claim(srv, hashes, s, Layout{})
			case 2:
				perr = pend.Forget(srv, hashes)
			case 3:
				perr = pend.ForgetServer(srv)
			case 4:
				perr = pend.Observe(srv, []paged.Event{audit37Event(r, 1)})
			}
			if perr != nil {
				if !audit37Known(perr) {
					t.Fatalf("seed %d: Pending: unknown error %v", seed, perr)
				}
				if pend.Len() != plen {
					t.Fatalf("seed %d: refused Pending call (%v) changed Len %d -> %d", seed, perr, plen, pend.Len())
				}
				refused++
			}
		case 9:
			call = "advance clock"
			clk.t = clk.t.Add(time.Duration(r.IntN(30)) * time.Second)
			before = view()
		}
		log = append(log, call)
		if err != nil {
			if !audit37Known(err) {
				t.Fatalf("seed %d %s: unknown error %v\ncalls:\n%s", seed, call, err, strings.Join(log, "\n"))
			}
			if after := view(); after != before {
				t.Fatalf("seed %d %s: error %v changed the index\nbefore %s\nafter  %s\ncalls:\n%s", seed, call, err, before, after, strings.Join(log, "\n"))
			}
			refused++
		}
	}
	return refused
}

// TestAudit37PendingClaimScore: Claim clamps a Score no Lookup and
// Extend give (negative Blocks counts as 0, Pending is taken within [0,
// Blocks]) and claims the hashes from Blocks-Pending on. It computed
// Blocks-Pending unclamped: Blocks MaxInt with Pending -1 overflowed to a
// negative start and claimed all three hashes of a run the score said the
// server held already (a wrong claim, where Pending promises to
// under-report at worst), and Pending MinInt claimed the held block too.
func TestAudit37PendingClaimScore(t *testing.T) {
	for _, tc := range []struct {
		sc   Score
		want int
	}{
		{Score{Blocks: math.MaxInt, Pending: -1}, 0},
		{Score{Blocks: 1, Pending: math.MinInt}, 2},
		{Score{Blocks: 2, Pending: -1}, 1},
		{Score{Blocks: -1}, 3},
		{Score{Blocks: 3, Pending: 5}, 3},
		{Score{Blocks: math.MinInt, Pending: math.MinInt}, 3},
		{Score{Blocks: math.MaxInt, Pending: math.MaxInt}, 3},
		{Score{Blocks: 2, Pending: 1}, 2},
		{Score{Blocks: math.MaxInt}, 0},
	} {
		p, err := NewPending(PendingConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Claim(0, hs(1, 2, 3), tc.sc, Layout{}); err != nil || p.Len() != tc.want {
			t.Errorf("Claim with %+v: error %v, %d hashes claimed, want %d", tc.sc, err, p.Len(), tc.want)
		}
	}
}

// TestAudit37WordsFor: WordsFor is never negative and covers n bits for
// every n (it overflowed to a negative count at MaxInt and gave -2 at
// -200).
func TestAudit37WordsFor(t *testing.T) {
	for _, n := range []int{math.MinInt, -200, -64, -1, 0, 1, 63, 64, 65, 1 << 16, math.MaxInt - 63, math.MaxInt} {
		w := WordsFor(n)
		want := 0
		if n > 0 {
			want = (n-1)/64 + 1
		}
		if w != want {
			t.Errorf("WordsFor(%d) = %d, want %d", n, w, want)
		}
	}
	for _, m := range []paged.Medium{paged.Device, paged.Host, 2, 255} {
		if b := TierBit(m); b != 0 && b != 1 {
			t.Errorf("TierBit(%d) = %d", m, b)
		}
	}
	k := h(5)
	for _, g := range []int{0, 1, -1, math.MaxInt, math.MinInt} {
		if g != 0 && GroupKey(&k, g) == k {
			t.Errorf("GroupKey(h, %d) is h itself", g)
		}
	}
}

// TestAudit37HostileConcurrent: Index and Pending are safe for concurrent
// use; hostile calls (bad events, names, servers, scores) from four
// goroutines at once, good ones among them, must neither race (run it
// with -race) nor panic nor return an unknown error, and the index must
// end with distinct names on distinct IDs.
func TestAudit37HostileConcurrent(t *testing.T) {
	x, err := New(Config{MaxServers: 3})
	if err != nil {
		t.Fatal(err)
	}
	pend, err := NewPending(PendingConfig{Capacity: 16, MaxServers: 3})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(g), 37))
			var bad error
			defer func() {
				if e := recover(); e != nil {
					bad = fmt.Errorf("goroutine %d: panic %v\n%s", g, e, debug.Stack())
				}
				errs <- bad
			}()
			seq := uint64(0)
			for range 500 {
				name := audit37Names[r.IntN(len(audit37Names))]
				var err error
				switch r.IntN(7) {
				case 0, 1:
					seq++
					err = x.Apply(name, []paged.Event{audit37Event(r, seq)})
				case 2:
					err = x.Resync(name, nil)
				case 3:
					err = x.Unregister(name)
				case 4:
					l, _ := ParseLayout(audit37Layouts[r.IntN(len(audit37Layouts))])
					err = x.SetLayout(name, l)
				case 5:
					hashes := audit37Hashes(r)
					sc, lerr := x.Lookup(hashes, nil)
					if lerr != nil {
						bad = lerr
						return
					}
					pend.Extend(hashes, sc)
					if len(sc) > 0 {
						err = pend.Claim(ServerID(r.IntN(5)-1), hashes, sc[r.IntN(len(sc))], Layout{})
					}
				case 6:
					err = pend.Observe(ServerID(r.IntN(5)-1), []paged.Event{audit37Event(r, 1)})
					_ = pend.Len()
				}
				if err != nil && !audit37Known(err) {
					bad = fmt.Errorf("goroutine %d: unknown error %v", g, err)
					return
				}
			}
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	srv, err := x.Servers(nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range srv {
		if s.Name != "" && seen[s.Name] {
			t.Errorf("name %q on two IDs: %+v", s.Name, srv)
		}
		seen[s.Name] = true
	}
}
