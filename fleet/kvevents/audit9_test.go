package kvevents

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9EncoderIsSafeForConcurrentUse runs one Encoder from several
// goroutines (the package says it is safe for concurrent use; run with
// -race) and checks each goroutine's frames against those of an Encoder
// of its own.
func TestAudit9EncoderIsSafeForConcurrentUse(t *testing.T) {
	for _, cfg := range []EncoderConfig{{}, {Layout: MapLayout, Hashes: HashInt, Rank: 3, Group: 1}} {
		shared, err := NewEncoder(cfg)
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own, err := NewEncoder(cfg)
				if err != nil {
					errs[w] = err
					return
				}
				r := rand.New(rand.NewPCG(uint64(w), 7))
				var a, b []byte
				for i := range 300 {
					events := randomEvents(r, cfg.Hashes == HashInt)
					if a, err = shared.AppendBatch(a[:0], float64(i), events); err != nil {
						errs[w] = err
						return
					}
					if b, err = own.AppendBatch(b[:0], float64(i), events); err != nil {
						errs[w] = err
						return
					}
					if !bytes.Equal(a, b) {
						errs[w] = fmt.Errorf("worker %d batch %d: the shared encoder's frame differs from its own", w, i)
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	}
}

// TestAudit9DecodedEventsOwnNoCallerMemory checks that a Stream's events
// do not alias the frame they came from (a subscriber reuses its receive
// buffer), and that a caller writing the events it was given does not
// change the next batch's events.
func TestAudit9DecodedEventsOwnNoCallerMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, cfg := range []EncoderConfig{{}, {Layout: MapLayout, Hashes: HashInt, Group: 0}} {
		e, err := NewEncoder(cfg)
		require.NoError(t, err)
		var s, clean Stream
		var frame []byte
		for seq := range uint64(200) {
			events := randomEvents(r, cfg.Hashes == HashInt)
			frame, err = e.AppendBatch(frame[:0], float64(seq), events)
			require.NoError(t, err)
			got, err := s.Decode(seq, frame)
			require.NoError(t, err)
			want, err := clean.Decode(seq, slices.Clone(frame))
			require.NoError(t, err)
			kept := deepCopy(want)
			for i := range frame {
				frame[i] = 0xc1 // never used in msgpack
			}
			require.Equal(t, kept, deepCopy(got), "batch %d: the events alias the frame", seq)
			for i := range got {
				for j := range got[i].Hashes {
					got[i].Hashes[j] = paged.Hash{0xAB}
				}
				for j := range got[i].Tokens {
					got[i].Tokens[j] = -9
				}
				got[i].Seq, got[i].Kind = 1<<60, 0
			}
		}
		require.Equal(t, clean.Batch().TS, s.Batch().TS)
	}
}

func deepCopy(evs []paged.Event) []paged.Event {
	out := slices.Clone(evs)
	for i := range out {
		out[i].Hashes = slices.Clone(out[i].Hashes)
		out[i].Tokens = slices.Clone(out[i].Tokens)
	}
	return out
}
