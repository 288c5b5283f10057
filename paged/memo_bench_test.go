package paged_test

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
)

// BenchmarkChatTurn: admitting the next turn of a long chat, the whole
// conversation resent with a new user message, without and with
// Config.HashMemo. Two conversations of 64K tokens were built turn by
// turn (a 384-token message, then a 128-token reply decoded one token at
// a time, the two conversations' decode steps interleaved, so each
// chain's blocks are scattered over the pool as a server's are); the
// timed operation adds one of them with a new 384-token message, checks
// its admission (the lookup) and frees it. x-sha-floor is the time over
// as many 96-byte SHA-256 sums as the prompt has blocks; recalled is the
// share of its block hashes taken from the memo.
func BenchmarkChatTurn(b *testing.B) {
	for _, memo := range []bool{false, true} {
		b.Run(fmt.Sprintf("tokens=64K/memo=%v", memo), func(b *testing.B) {
			const turns, msg, reply = 128, 384, 128
			m, err := paged.New(paged.Config{NumBlocks: 2*turns*(msg+reply)/16 + 2*turns + 64, HashMemo: memo})
			if err != nil {
				b.Fatal(err)
			}
			var hist [2][]int32
			next := int32(0)
			tokens := func(n int) []int32 {
				out := make([]int32, n)
				for i := range out {
					next = next*1103515245 + 12345
					out[i] = next >> 16 & 0x7fff
				}
				return out
			}
			for range turns {
				var ids [2]paged.SeqID
				for c := range ids {
					if ids[c], _, err = m.Create(append(hist[c], tokens(msg)...), nil); err != nil {
						b.Fatal(err)
					}
				}
				for range reply {
					for c := range ids {
						if err := m.Append(ids[c], tokens(1)...); err != nil {
							b.Fatal(err)
						}
					}
				}
				for c, id := range ids {
					hist[c], _ = m.Tokens(id)
					hist[c] = append([]int32(nil), hist[c]...)
					if err := m.Free(id); err != nil {
						b.Fatal(err)
					}
				}
			}
			prompt := append(hist[0], tokens(msg)...)
			op := func() { addLookupFree(b, m, prompt, nil) }
			op()
			before := m.Stats()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				op()
			}
			reportCPU(b, cpu0, len(prompt))
			st := m.Stats()
			blocks := len(prompt) / 16
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perOp/float64(len(prompt)), "ns/token")
			b.ReportMetric(perOp/(float64(blocks)*probe.SHA256()), "x-sha-floor")
			b.ReportMetric(float64(st.HashesRecalled-before.HashesRecalled)/float64(b.N)/float64(blocks), "recalled")
		})
	}
}
