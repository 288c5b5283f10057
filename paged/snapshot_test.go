package paged_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// tierCopies follows a manager's events: copies of each hash per tier.
type tierCopies map[paged.Hash][2]int

func (c tierCopies) apply(evs []paged.Event) {
	add := func(h paged.Hash, m paged.Medium, d int) {
		v := c[h]
		v[m] += d
		if v == ([2]int{}) {
			delete(c, h)
			return
		}
		c[h] = v
	}
	for _, ev := range evs {
		for _, h := range ev.Hashes {
			switch ev.Kind {
			case paged.BlockStored:
				add(h, ev.Medium, 1)
			case paged.BlockRemoved:
				add(h, ev.Medium, -1)
			case paged.BlockMoved:
				add(h, ev.From, -1)
				add(h, ev.Medium, 1)
			}
		}
		if ev.Kind == paged.AllBlocksCleared {
			clear(c)
		}
	}
}

// TestSnapshotEqualsTheEventStream drives a manager with a host tier
// through random requests over shared prefixes and checks, at many
// points, that its snapshot lists exactly what its events describe, in
// chain order, numbered where the stream stands.
func TestSnapshotEqualsTheEventStream(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 24, HostBlocks: 8, Events: 1 << 12})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	var live []paged.SeqID
	follow := tierCopies{}
	var evs []paged.Event
	var snap paged.Snapshot
	var last uint64
	for step := range 400 {
		if len(live) > 3 || (len(live) > 0 && rng.IntN(2) == 0) {
			k := rng.IntN(len(live))
			require.NoError(t, m.Free(live[k]))
			live = append(live[:k], live[k+1:]...)
		} else {
			root := uint64(rng.IntN(3))
			n := 1 + rng.IntN(5)
			tokens := make([]int32, 4*n+1)
			for i := range tokens {
				tokens[i] = int32(root*1000) + int32(i*(1+rng.IntN(2)))
			}
			if id, _, err := m.Create(tokens, &paged.SeqOptions{AllowFullHit: true}); err == nil {
				live = append(live, id) // created and admitted
			}
		}
		// Half the time the snapshot is taken with events still queued:
		// it must include them all the same.
		if rng.IntN(2) == 0 {
			evs = m.DrainEvents(evs[:0])
			follow.apply(evs)
			if len(evs) > 0 {
				last = evs[len(evs)-1].Seq
			}
		}
		m.Snapshot(&snap)
		pending := m.DrainEvents(nil)
		want := tierCopies{}
		for h, v := range follow {
			want[h] = v
		}
		want.apply(pending)
		follow = want
		if len(pending) > 0 {
			last = pending[len(pending)-1].Seq
		}
		require.Equal(t, last, snap.Seq, "step %d", step)
		got := tierCopies{}
		got.apply(snap.Events(nil))
		require.Equal(t, want, got, "step %d", step)
		pos := map[paged.Hash]int{}
		for i, b := range snap.Blocks {
			if _, ok := pos[b.Hash]; !ok {
				pos[b.Hash] = i
			}
			assert.Zero(t, b.Group)
		}
		for i, b := range snap.Blocks {
			if p, ok := pos[b.Parent]; ok && b.HasParent {
				require.Less(t, p, i, "step %d: block %d comes before its parent", step, i)
			}
		}
	}
	assert.NotZero(t, m.Stats().Tiers.Offloads, "the replay must exercise the host tier")
}

func TestSnapshotValidate(t *testing.T) {
	require.ErrorIs(t, (&paged.Snapshot{}).Validate(), paged.ErrInvalid)
	require.ErrorIs(t, (&paged.Snapshot{BlockSize: 4, Blocks: []paged.CachedBlock{{Medium: 7}}}).Validate(), paged.ErrInvalid)
	require.ErrorIs(t, (&paged.Snapshot{BlockSize: 4, Blocks: []paged.CachedBlock{{Group: -1}}}).Validate(), paged.ErrInvalid)
	require.NoError(t, (&paged.Snapshot{BlockSize: 4}).Validate())
}

// A snapshot lists the cached blocks (a chain's blocks after their
// parents) and where the event stream stood; as events, a chain is one
// BlockStored.
func ExampleManager_Snapshot() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Events: 64})
	id, _, _ := m.Create([]int32{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil)
	_ = m.Free(id) // its two full blocks stay cached

	var snap paged.Snapshot
	m.Snapshot(&snap)
	fmt.Println("seq:", snap.Seq, "blocks:", len(snap.Blocks))
	fmt.Println("second block's parent is the first:", snap.Blocks[1].Parent == snap.Blocks[0].Hash)
	for _, ev := range snap.Events(nil) {
		fmt.Println(ev.Kind, len(ev.Hashes), "blocks on", ev.Medium)
	}
	// Output:
	// seq: 1 blocks: 2
	// second block's parent is the first: true
	// BlockStored 2 blocks on GPU
}
