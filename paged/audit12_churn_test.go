package paged

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/pagedkv/pagedkv/eviction"
)

// TestChurnStaysBounded: 10^5 sequences of varied sizes come and go, with
// preemption, swapping, forks, pins that expire, a host tier, the hash
// memo and a KV event buffer nobody drains; the manager's structures and
// the heap must stay the size of the pool and of the peak of live
// sequences, not grow with the number of operations.
func TestChurnStaysBounded(t *testing.T) {
	if raceOn {
		churn(t, nil, 2_000, 4_000)
		return
	}
	churn(t, nil, 20_000, 80_000)
}

// TestChurnStaysBoundedEveryPolicy: the same, shorter, under each eviction
// policy (ghost lists, frequency counts, chain records).
func TestChurnStaysBoundedEveryPolicy(t *testing.T) {
	if raceOn {
		t.Skip("the race build runs TestChurnStaysBounded only")
	}
	for _, name := range eviction.Names() {
		t.Run(name, func(t *testing.T) {
			f, err := eviction.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			churn(t, f, 3_000, 6_000)
		})
	}
}

// churn runs warm cycles, then measures the heap over the next cycles.
func churn(t *testing.T, policy eviction.Factory, warm, cycles int) {
	const bs, live = 16, 64
	m, err := New(Config{BlockSize: bs, NumBlocks: 1024, HostBlocks: 1024, Events: 256, HashMemo: true, Policy: policy, HostPolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPinBudget(64); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int32, 0, 40*bs)
	ids := make([]SeqID, 0, live)
	var tick int64
	made := 0
	cycle := func() {
		if len(ids) == live {
			i := r.IntN(len(ids))
			if err := m.Free(ids[i]); err != nil {
				t.Fatal(err)
			}
			ids[i] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
		}
		// A few shared system prompts, then a private tail.
		prompt = prompt[:0]
		sys := int32(r.IntN(8))
		for i := range (1 + r.IntN(4)) * bs {
			prompt = append(prompt, sys*1000+int32(i))
		}
		for range r.IntN(20 * bs) {
			prompt = append(prompt, r.Int32N(50000))
		}
		id, _, err := m.Create(prompt, nil)
		if err != nil {
			return // no room now: the next cycle frees one
		}
		made++
		ids = append(ids, id)
		for range r.IntN(3 * bs) {
			if m.Append(id, r.Int32N(50000)) != nil {
				break
			}
		}
		switch r.IntN(16) {
		case 0:
			_ = m.Preempt(id)
		case 1:
			_ = m.SwapOut(id)
			m.TakeSwaps(nil)
		case 2:
			if len(ids) < live {
				if c, err := m.Fork(id); err == nil {
					ids = append(ids, c)
				}
			}
		case 3:
			_, _, _ = m.Pin(prompt[:bs], nil, tick+int64(1+r.IntN(50)))
		}
		tick++
		m.Advance(tick)
		m.TakeCopies(nil)
		m.TakeSwaps(nil)
		m.TakePinEvents(nil)
	}
	for range warm {
		cycle()
	}
	before := heapInuse()
	for range cycles {
		cycle()
	}
	grown := int64(heapInuse()) - int64(before)
	t.Logf("heap grew %d KiB over %d cycles; %d sequences made, %d slots, %d free, %d events queued, %d dropped; %+v",
		grown>>10, cycles, made, len(m.seqs), len(m.freeSeqs), len(m.bp.events.queue), m.bp.events.dropped, m.PinStats())
	if grown > 256<<10 {
		t.Errorf("heap grew %d KiB over %d cycles", grown>>10, cycles)
	}
	if len(m.seqs) > live {
		t.Errorf("%d sequence slots for at most %d live sequences", len(m.seqs), live)
	}
	if len(m.bp.events.queue) > 256 {
		t.Errorf("%d events queued, capacity 256", len(m.bp.events.queue))
	}
	if n := cap(m.bp.events.hashes[0]) + cap(m.bp.events.hashes[1]); n > 256*40 {
		t.Errorf("event arenas hold %d hashes for 256 events of at most 40 blocks", n)
	}
	if len(m.pins.pins) > 64 {
		t.Errorf("%d pin slots for a budget of 64 blocks", len(m.pins.pins))
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// heapInuse returns the heap in use after a collection.
func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
