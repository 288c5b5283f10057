package fleet_test

import (
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// replay drives a paged.Manager with events on through random calls and
// feeds its events to an Index, dropping some batches on the way and
// resyncing from snapshots, and checks the index against the manager.
type replay struct {
	m    *paged.Manager
	x    *fleet.Index
	seqs []paged.SeqID
	// swapped are the sequences in the host tier.
	swapped map[paged.SeqID]bool
	// seen are every key (fleet.GroupKey) the manager ever reported or
	// listed.
	seen map[paged.Hash]bool
	// applied is the newest event number the index was given (or resynced
	// to): the index can be checked only when the manager emitted nothing
	// after it, since events the manager's full buffer dropped at the end
	// of a stream show as a gap only when a later one arrives.
	applied uint64
	snap    paged.Snapshot
}

func (r *replay) prompt(t *rapid.T) []int32 {
	n := rapid.IntRange(1, 9).Draw(t, "len")
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(rapid.IntRange(0, 2).Draw(t, "tok"))
	}
	return p
}

func (r *replay) pick(t *rapid.T) (int, bool) {
	if len(r.seqs) == 0 {
		return 0, false
	}
	return rapid.IntRange(0, len(r.seqs)-1).Draw(t, "seq"), true
}

func ignore(t *rapid.T, err error) {
	if err != nil && !errors.Is(err, paged.ErrNoSpace) && !errors.Is(err, paged.ErrNever) && !errors.Is(err, paged.ErrInvalid) && !errors.Is(err, paged.ErrCacheInUse) && !errors.Is(err, paged.ErrSequenceState) && !errors.Is(err, paged.ErrUncomputed) {
		t.Fatal(err)
	}
}

func (r *replay) Create(t *rapid.T) {
	id, _, err := r.m.Create(r.prompt(t), nil)
	ignore(t, err)
	if err == nil {
		r.seqs = append(r.seqs, id)
	}
}

func (r *replay) Append(t *rapid.T) {
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		ignore(t, r.m.Append(r.seqs[i], r.prompt(t)[:1]...))
	}
}

func (r *replay) Fork(t *rapid.T) {
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		c, err := r.m.Fork(r.seqs[i])
		ignore(t, err)
		if err == nil {
			r.seqs = append(r.seqs, c)
		}
	}
}

func (r *replay) Free(t *rapid.T) {
	if i, ok := r.pick(t); ok {
		if err := r.m.Free(r.seqs[i]); err != nil {
			t.Fatal(err)
		}
		delete(r.swapped, r.seqs[i])
		r.seqs = append(r.seqs[:i], r.seqs[i+1:]...)
	}
}

func (r *replay) SwapOut(t *rapid.T) {
	if r.m.Config().HostBlocks == 0 {
		t.Skip("no host tier")
	}
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		err := r.m.SwapOut(r.seqs[i])
		ignore(t, err)
		if err == nil {
			r.swapped[r.seqs[i]] = true
		}
	}
}

// Step ends the step being built: the sequences admitted in it may be
// swapped out from now on.
func (r *replay) Step(t *rapid.T) { r.m.EndStep() }

func (r *replay) SwapIn(t *rapid.T) {
	if i, ok := r.pick(t); ok && r.swapped[r.seqs[i]] {
		err := r.m.SwapIn(r.seqs[i])
		ignore(t, err)
		if err == nil {
			delete(r.swapped, r.seqs[i])
		}
	}
}

func (r *replay) Preempt(t *rapid.T) {
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		ignore(t, r.m.Preempt(r.seqs[i]))
	}
}

func (r *replay) Admit(t *rapid.T) {
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		_, err := r.m.Admit(r.seqs[i])
		ignore(t, err)
	}
}

func (r *replay) Truncate(t *rapid.T) {
	if i, ok := r.pick(t); ok && !r.swapped[r.seqs[i]] {
		n, err := r.m.Len(r.seqs[i])
		if err != nil {
			t.Fatal(err)
		}
		ignore(t, r.m.Truncate(r.seqs[i], rapid.IntRange(0, n).Draw(t, "keep")))
	}
}

func (r *replay) ResetCache(t *rapid.T) { ignore(t, r.m.ResetCache()) }

// Feed drains the manager's events to the index, or loses them.
func (r *replay) Feed(t *rapid.T) {
	evs := r.m.DrainEvents(nil)
	for _, ev := range evs {
		for _, h := range ev.Hashes {
			r.seen[fleet.GroupKey(&h, ev.Group)] = true
		}
	}
	if rapid.IntRange(0, 5).Draw(t, "lose") == 0 {
		return
	}
	if err := r.x.Apply("gpu", evs); err != nil {
		t.Fatal(err)
	}
	if len(evs) > 0 {
		r.applied = max(r.applied, evs[len(evs)-1].Seq)
	}
	r.check(t)
}

// Resync rebuilds the server from a snapshot; the events queued before it
// are replays.
func (r *replay) Resync(t *rapid.T) {
	r.m.Snapshot(&r.snap)
	if err := r.x.Resync("gpu", &r.snap); err != nil {
		t.Fatal(err)
	}
	r.applied = r.snap.Seq
	r.Feed(t)
}

// check compares the index with the manager's snapshot, hash by hash:
// exact when the server is not partial, a subset when it is.
func (r *replay) check(t *rapid.T) {
	r.m.Snapshot(&r.snap)
	if r.snap.Seq != r.applied {
		return
	}
	dev, host := map[paged.Hash]bool{}, map[paged.Hash]bool{}
	for _, b := range r.snap.Blocks {
		// The index keys a block by (hash, group): GroupKey.
		k := fleet.GroupKey(&b.Hash, b.Group)
		r.seen[k] = true
		if b.Medium == paged.Host {
			host[k] = true
		} else {
			dev[k] = true
		}
	}
	var sc []fleet.Score
	for h := range r.seen {
		var err error
		sc, err = r.x.Lookup([]paged.Hash{h}, sc[:0])
		if err != nil {
			t.Fatal(err)
		}
		if len(sc) == 0 && r.applied == 0 {
			continue // nothing applied or resynced: the server is not registered
		}
		if len(sc) != 1 {
			t.Fatalf("%d scores", len(sc))
		}
		s := sc[0]
		wantBlocks, wantDev := 0, 0
		if dev[h] || host[h] {
			wantBlocks = 1
		}
		if dev[h] {
			wantDev = 1
		}
		if s.Partial {
			if s.Blocks > wantBlocks || s.Device > wantDev {
				t.Fatalf("partial server over-reports %v: index %d blocks %d device, manager device %v host %v", h, s.Blocks, s.Device, dev[h], host[h])
			}
			continue
		}
		if s.Blocks != wantBlocks || s.Device != wantDev {
			t.Fatalf("exact server: %v: index %d blocks %d device, manager device %v host %v", h, s.Blocks, s.Device, dev[h], host[h])
		}
	}
}

// TestIndexFollowsManager: an index fed a manager's events (some lost,
// then resynced) holds what the manager's snapshot lists: exactly while
// the server is not partial, never more while it is.
func TestIndexFollowsManager(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := paged.Config{
			BlockSize:  rapid.IntRange(1, 3).Draw(t, "bs"),
			NumBlocks:  rapid.IntRange(4, 16).Draw(t, "blocks"),
			HostBlocks: rapid.SampledFrom([]int{0, 0, 3, 8}).Draw(t, "host"),
			Events:     rapid.SampledFrom([]int{4, 16, 1024}).Draw(t, "events"),
		}
		cfg.DisableOffload = rapid.Bool().Draw(t, "noOffload")
		switch rapid.IntRange(0, 2).Draw(t, "groups") {
		case 1:
			cfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 3}}
			cfg.DisableOffload = true // swapping with several groups needs it
		case 2:
			cfg.Groups = []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}
			cfg.DisableOffload = true
		}
		m, err := paged.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		x, err := fleet.New(fleet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r := &replay{m: m, x: x, swapped: map[paged.SeqID]bool{}, seen: map[paged.Hash]bool{}}
		t.Repeat(rapid.StateMachineActions(r))
		r.Feed(t)
	})
}

// Check checks the manager's own invariants after every action; the index
// is compared in Feed, when it has been given every event.
func (r *replay) Check(t *rapid.T) {
	if err := r.m.Check(); err != nil {
		t.Fatal(err)
	}
}
