package kvmem_test

import (
	"testing"

	"pgregory.net/rapid"

	"github.com/pagedkv/pagedkv/kvmem"
)

// drawSpec draws a small hybrid layout: a full group, maybe a window, a
// chunk and a state group.
func drawSpec(t *rapid.T) kvmem.Spec {
	s := kvmem.Spec{KVHeads: rapid.IntRange(1, 8).Draw(t, "heads"), HeadDim: 8 * rapid.IntRange(1, 16).Draw(t, "dim8"), Key: kvmem.BF16}
	if rapid.Bool().Draw(t, "full") {
		s.Groups = append(s.Groups, kvmem.Group{Kind: kvmem.Full, Layers: rapid.IntRange(1, 6).Draw(t, "fullLayers")})
	}
	if rapid.Bool().Draw(t, "window") || len(s.Groups) == 0 {
		s.Groups = append(s.Groups, kvmem.Group{Kind: kvmem.Window, Layers: rapid.IntRange(1, 6).Draw(t, "windowLayers"), Window: rapid.IntRange(1, 300).Draw(t, "w")})
	}
	if rapid.Bool().Draw(t, "chunked") {
		s.Groups = append(s.Groups, kvmem.Group{Kind: kvmem.Chunked, Layers: rapid.IntRange(1, 6).Draw(t, "chunkLayers"), Chunk: rapid.IntRange(1, 300).Draw(t, "c")})
	}
	if rapid.Bool().Draw(t, "state") {
		s.Groups = append(s.Groups, kvmem.Group{Kind: kvmem.State, Layers: rapid.IntRange(1, 6).Draw(t, "stateLayers"), StateBytes: rapid.Int64Range(1, 1<<16).Draw(t, "stateBytes")})
	}
	return s
}

// TestPlanPropertiesRapid checks, on random hybrid layouts and
// deployments, that the plan's figures agree with one another and never
// promise more than the pool holds: the budget splits the memory exactly,
// NumBlocks is the whole blocks of the budget, MaxSequences falls as the
// context grows and its sequences fit in the usable blocks, MaxContext
// falls as the sequences grow and is exactly the longest context at which
// that many sequences fit, and Tokens is MaxContext(1) per replica.
func TestPlanPropertiesRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := drawSpec(t)
		tp := 1 << rapid.IntRange(0, 3).Draw(t, "tpLog")
		cp := rapid.IntRange(1, 3).Draw(t, "cp")
		replicas := rapid.IntRange(1, 3).Draw(t, "replicas")
		d := kvmem.Deployment{
			GPUs: tp * cp * replicas, TP: tp, CP: cp,
			GPUMemory:    rapid.Int64Range(1<<16, 1<<26).Draw(t, "mem"),
			Reserve:      float64(rapid.IntRange(0, 50).Draw(t, "reservePct")) / 100,
			BlockSize:    rapid.SampledFrom([]int{1, 4, 16, 32}).Draw(t, "bs"),
			PrefillChunk: rapid.IntRange(0, 600).Draw(t, "prefill"),
		}
		weights := rapid.Int64Range(0, 1<<24).Draw(t, "weights")
		c, err := kvmem.Plan(s, weights, d)
		if err != nil {
			t.Skip(err) // too small or an unsplittable TP: the error paths have their own tests
		}
		if c.WeightBytes+c.ReserveBytes+c.KVBytes != d.GPUMemory {
			t.Fatalf("weights %d + reserve %d + KV %d != memory %d", c.WeightBytes, c.ReserveBytes, c.KVBytes, d.GPUMemory)
		}
		if c.NumBlocks*c.BlockBytes > c.KVBytes || (c.NumBlocks+1)*c.BlockBytes <= c.KVBytes {
			t.Fatalf("NumBlocks %d of %d bytes is not the whole blocks of %d", c.NumBlocks, c.BlockBytes, c.KVBytes)
		}
		if n, err := c.PoolBlocks(); err != nil || int64(n) != c.NumBlocks {
			t.Fatalf("PoolBlocks %d, %v; NumBlocks %d", n, err, c.NumBlocks)
		}
		R := int64(c.Replicas)
		prev := int64(-1)
		for _, L := range []int{1, 2, 15, 16, 17, 100, 257, 1000, 5000, 40000} {
			n := c.MaxSequences(L)
			if prev >= 0 && n > prev {
				t.Fatalf("MaxSequences(%d) = %d grew from %d", L, n, prev)
			}
			prev = n
			if n%R != 0 {
				t.Fatalf("MaxSequences(%d) = %d is not a multiple of the %d replicas", L, n, R)
			}
			// The sequences of one replica fit in one pool's usable blocks.
			if per := c.SequenceBytes(L); per < 0 || (n/R)*per > c.UsableBlocks()*c.BlockBytes {
				t.Fatalf("MaxSequences(%d) = %d of %d bytes over %d replicas exceeds %d usable blocks of %d", L, n, per, R, c.UsableBlocks(), c.BlockBytes)
			} else if per > 0 && (n/R+1)*per <= c.UsableBlocks()*c.BlockBytes {
				t.Fatalf("MaxSequences(%d) = %d, but %d of %d bytes fit per replica", L, n, n/R+1, per)
			}
		}
		prevCtx := kvmem.Unbounded
		for _, k := range []int{1, 2, 3, 5, 8, 13} {
			l := c.MaxContext(k)
			if l > prevCtx {
				t.Fatalf("MaxContext(%d) = %d grew from %d", k, l, prevCtx)
			}
			prevCtx = l
			perReplica := int64((k + c.Replicas - 1) / c.Replicas)
			if l == kvmem.Unbounded {
				if got := c.MaxSequences(1 << 24); got < perReplica*R {
					t.Fatalf("MaxContext(%d) unbounded, but MaxSequences(2^24) = %d", k, got)
				}
				continue
			}
			if l > 0 && c.MaxSequences(int(l)) < perReplica*R {
				t.Fatalf("MaxContext(%d) = %d, but MaxSequences(%d) = %d", k, l, l, c.MaxSequences(int(l)))
			}
			if c.MaxSequences(int(l)+1) >= perReplica*R {
				t.Fatalf("MaxContext(%d) = %d, but MaxSequences(%d) = %d: a longer context fits", k, l, l+1, c.MaxSequences(int(l)+1))
			}
		}
		if l := c.MaxContext(1); l != kvmem.Unbounded && c.Tokens() != l*R {
			t.Fatalf("Tokens %d != MaxContext(1) %d x %d replicas", c.Tokens(), l, R)
		}
	})
}
