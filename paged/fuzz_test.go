package paged_test

import (
	"math"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// fuzzArgs reads operation codes and arguments from fuzz input. Byte
// values near the top stand for the edges hostile callers reach for, so
// the fuzzer finds them without searching 64-bit space.
type fuzzArgs struct{ b []byte }

func (a *fuzzArgs) byte() byte {
	if len(a.b) == 0 {
		return 0
	}
	v := a.b[0]
	a.b = a.b[1:]
	return v
}

// int returns a small number, or an edge value.
func (a *fuzzArgs) int() int {
	switch v := a.byte(); v {
	case 255:
		return math.MinInt
	case 254:
		return math.MaxInt
	case 253:
		return -1
	case 252:
		return min(1<<36, math.MaxInt)
	case 251:
		return math.MaxInt32
	default:
		return int(v) - 8
	}
}

func (a *fuzzArgs) tokens() []int32 {
	n := int(a.byte() % 12)
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(a.int())
	}
	return out
}

// FuzzManager drives a small manager with arbitrary operations and
// arguments (negative, huge, stale handles): no call may panic, every
// invariant holds after each, and a call that fails leaves the occupancy
// and sequence counts as they were.
func FuzzManager(f *testing.F) {
	f.Add([]byte{0, 5, 1, 2, 3, 4, 5, 3, 0, 1, 7, 4, 0, 2, 8, 0, 9})
	f.Add([]byte{2, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 0, 3, 0, 4, 1, 0, 1, 6, 0, 0, 7, 0, 12, 0})
	f.Add([]byte{0, 3, 255, 254, 253, 2, 252, 11, 0, 251, 14, 253, 5, 0, 250, 15, 254})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 512 {
			return // long inputs add nothing but time
		}
		a := &fuzzArgs{b: data}
		m, err := paged.New(paged.Config{BlockSize: 1 + int(a.byte()%4), NumBlocks: 2 + int(a.byte()%16),
			HostBlocks: int(a.byte() % 8), Events: 8, MaxModelLen: 64, MaxWaiting: 4})
		if err != nil {
			t.Fatal(err)
		}
		var ids []paged.SeqID
		var batch paged.Batch
		handle := func() paged.SeqID {
			i := a.int()
			if i >= 0 && i < len(ids) {
				return ids[i]
			}
			return paged.SeqID(uint64(a.byte())<<32 | uint64(a.byte()))
		}
		for len(a.b) > 0 {
			before := m.Stats()
			op := a.byte() % 18
			var err error
			var id paged.SeqID
			switch op {
			case 0:
				id, err = m.Add(a.tokens(), &paged.SeqOptions{Window: a.int(), LoRA: int32(a.int())})
			case 1:
				id, err = m.AddFromHashes(make([]paged.Hash, a.byte()%4), a.int(), nil)
			case 2:
				id, _, err = m.Create(a.tokens(), &paged.SeqOptions{Window: a.int()})
			case 3:
				_, err = m.Admit(handle())
			case 4:
				err = m.Append(handle(), a.tokens()...)
			case 5:
				err = m.AppendSpeculative(handle(), a.tokens()...)
			case 6:
				err = m.AcceptSpeculative(handle(), a.int())
			case 7:
				err = m.Truncate(handle(), a.int())
			case 8:
				id, err = m.Fork(handle())
			case 9:
				err = m.Preempt(handle())
			case 10:
				err = m.Free(handle())
			case 11:
				err = m.SwapOut(handle(), handle())
			case 12:
				err = m.SwapIn(handle())
			case 13:
				_, err = m.Onboard(handle())
			case 14:
				batch.Stride, batch.SplitUnits = max(a.int(), 0)%3*16, max(a.int(), 0)%3
				err = m.BuildBatch(&batch, []paged.Scheduled{{ID: handle(), NewTokens: a.int()}, {ID: handle(), NewTokens: a.int()}})
			case 15:
				_, err = m.Slot(handle(), a.int())
				_ = batch.Split.Partials(a.int())
			case 16:
				err = m.ResetCache()
			case 17:
				_ = m.CanAdmitTokens(a.int())
				_, err = m.CanAdmit(handle())
				m.DrainEvents(nil)
				m.TakeSwaps(nil)
				m.TakeCopies(nil)
			}
			if id != 0 {
				ids = append(ids, id)
			}
			if cerr := m.Check(); cerr != nil {
				t.Fatalf("op %d: %v", op, cerr)
			}
			after := m.Stats()
			if err != nil && (after.FreeBlocks != before.FreeBlocks || after.CachedBlocks != before.CachedBlocks ||
				after.UsedBlocks != before.UsedBlocks || after.Sequences != before.Sequences || after.Running != before.Running ||
				after.Tiers.HostUsed != before.Tiers.HostUsed || after.Tiers.HostCached != before.Tiers.HostCached) {
				t.Fatalf("op %d failed with %v but changed the manager: %+v -> %+v", op, err, before, after)
			}
		}
	})
}
