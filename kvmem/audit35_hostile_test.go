package kvmem

import (
	"math"
	"math/rand/v2"
	"testing"
)

var audit35Ints = []int{-1, 0, 1, 2, 3, 7, 16, 64, 128, 1 << 20, 1 << 30, 1<<31 - 1, min(1<<31, math.MaxInt), min(1<<62+1, math.MaxInt), math.MaxInt, math.MinInt, math.MaxInt32, math.MaxInt - 1}

func a35i(r *rand.Rand) int {
	if r.IntN(3) == 0 {
		return r.IntN(300)
	}
	return audit35Ints[r.IntN(len(audit35Ints))]
}
func a35i64(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return math.MaxInt64
	case 1:
		return int64(a35i(r)) * int64(r.IntN(1<<20)+1)
	}
	return int64(a35i(r))
}

// TestAudit35HostileSpecs feeds random specs, deployments and arguments
// built from hostile values (negative, zero, near MaxInt and MaxInt32,
// NaN and infinite reserves, unknown formats and kinds) to every method:
// none may panic, and a plan Plan accepts reports no negative figure
// (SequenceBytes' documented -1 for an overflow aside).
func TestAudit35HostileSpecs(t *testing.T) {
	types := Types()
	types = append(types, Type{}, Type{Format: 200}, INT4(0), INT4(-2), INT4(math.MaxInt), INT2(math.MaxInt-3))
	floats := []float64{0, 0.1, 0.5, 0.999999, 1, -0.1, math.NaN(), math.Inf(1), math.Inf(-1), 1e-300}
	for seed := uint64(0); seed < 50000; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		s := Spec{Layers: a35i(r), KVHeads: a35i(r), HeadDim: a35i(r), Key: types[r.IntN(len(types))]}
		if r.IntN(3) == 0 {
			s.Value = types[r.IntN(len(types))]
		}
		if r.IntN(4) == 0 {
			s.KVHeads, s.HeadDim, s.MLALatent, s.MLARope = 0, 0, a35i(r), a35i(r)
		}
		if r.IntN(2) == 0 {
			if r.IntN(2) == 0 {
				s.Layers = 0
			}
			n := r.IntN(4)
			for i := 0; i < n; i++ {
				s.Groups = append(s.Groups, Group{Kind: Kind(r.IntN(6)), Layers: a35i(r), Window: a35i(r), Chunk: a35i(r), StateBytes: a35i64(r), StateHeads: a35i(r), Of: r.IntN(5) - 1})
			}
		}
		d := Deployment{GPUs: a35i(r) % 9, GPUMemory: a35i64(r), TP: a35i(r) % 5, CP: a35i(r) % 3, Reserve: floats[r.IntN(len(floats))], ReserveBytes: a35i64(r) / 4, BlockSize: a35i(r), PrefillChunk: a35i(r), SpecTokens: a35i(r) % 100, NoHybridPins: r.IntN(2) == 0}
		bs := a35i(r)
		w := a35i64(r)
		func() {
			defer func() {
				if e := recover(); e != nil {
					t.Fatalf("seed %d panic %v\nspec %+v\ndep %+v bs %d w %d", seed, e, s, d, bs, w)
				}
			}()
			_ = s.Validate()
			s.BlockBytes(bs)
			s.LayerBytes()
			s.LayersPerBlock()
			s.PoolBlocks(w, bs)
			s.SequenceBlocks(a35i(r), bs)
			s.SequenceBytes(a35i(r), bs)
			s.Shard(a35i(r))
			for _, g := range s.Groups {
				s.StateBlocks(g, bs)
			}
			s.TokenBytes()
			s.Key.RowBytes(a35i(r))
			s.Key.ParamBytes(a35i64(r))
			_ = s.Key.String()
			d.KVBudget(w)
			c, err := Plan(s, w, d)
			if err == nil {
				x := a35i(r)
				ms := c.MaxSequences(x)
				mc := c.MaxContext(x)
				sb := c.SequenceBytes(x)
				tk := c.Tokens()
				ub := c.UsableBlocks()
				if ms < 0 || mc < 0 || sb < -1 || tk < 0 || ub < 0 || c.NumBlocks < 0 || c.KVBytes < 0 {
					t.Errorf("seed %d negative: x=%d ms %d mc %d sb %d tk %d ub %d %+v\nspec %+v", seed, x, ms, mc, sb, tk, ub, c, s)
				}
				c.PoolBlocks()
			}
		}()
		if t.Failed() {
			return
		}
	}
}
