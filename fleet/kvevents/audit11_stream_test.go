package kvevents

import (
	"math"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// FuzzStream drives a Stream with fuzzed batch numbers, good frames of 0
// to 3 events, malformed frames and restarts, and checks what a fleet
// index relies on: event numbers only rise; a batch's events are numbered
// consecutively; a replay (a batch at or below the last one seen) yields
// nothing and no error; and the numbering shows a gap exactly when events
// may have been lost (a batch skipped, a first batch other than 0, a
// malformed frame, a restart), never otherwise.
func FuzzStream(f *testing.F) {
	f.Add([]byte{1, 0, 1, 1, 2, 1, 0, 1, 3, 1})
	f.Add([]byte{5, 3, 1, 1, 4, 1, 2, 1, 3, 200, 1, 1})
	f.Add([]byte{1, 2, 3, 1, 0, 210, 1, 1, 5, 0, 2, 0})
	f.Add([]byte{1, 0, 3, 0xff, 1, 1})
	enc, err := NewEncoder(EncoderConfig{})
	if err != nil {
		f.Fatal(err)
	}
	frames := make([][]byte, 4)
	for k := range frames {
		evs := make([]paged.Event, k)
		for i := range evs {
			evs[i] = paged.Event{Kind: paged.BlockRemoved, Hashes: []paged.Hash{HashFromInt(uint64(i))}}
		}
		if frames[k], err = enc.AppendBatch(nil, 1, evs); err != nil {
			f.Fatal(err)
		}
	}
	bad := frames[3][:len(frames[3])-1]
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s Stream
		var last uint64    // the last batch number the stream took
		started := false   // a batch was taken since the start or a restart
		var prev uint64    // the last event number returned
		expectGap := false // events may have been lost since prev
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			if op%6 == 5 {
				s.Restart()
				started, expectGap = false, true
				continue
			}
			// The batch number: the next, a jump ahead, a replay, or one
			// at the top of the range.
			var batch uint64
			switch {
			case !started:
				batch = uint64(arg % 3)
			case arg < 160:
				batch = last + 1
			case arg < 200:
				batch = last + 2 + uint64(arg%4)
			case arg < 250:
				batch = last - min(last, uint64(arg%3))
			default:
				batch = math.MaxUint64 - uint64(arg%2)
			}
			frame, malformed := bad, op%6 == 4
			if !malformed {
				frame = frames[op%6]
			}
			replay := started && batch <= last
			evs, err := s.Decode(batch, frame)
			if replay {
				if err != nil || len(evs) != 0 {
					t.Fatalf("op %d: replay of batch %d (last %d) gave %d events, %v", i/2, batch, last, len(evs), err)
				}
				continue
			}
			if (!started && batch != 0) || (started && batch != last+1) {
				expectGap = true
			}
			started, last = true, batch
			if malformed {
				if err == nil || len(evs) != 0 {
					t.Fatalf("op %d: malformed frame gave %d events, %v", i/2, len(evs), err)
				}
				expectGap = true
				continue
			}
			if err != nil {
				t.Fatalf("op %d: good frame: %v", i/2, err)
			}
			for k, ev := range evs {
				want := prev + 1
				if k == 0 && expectGap {
					if ev.Seq <= want {
						t.Fatalf("op %d: event %d after a possible loss, want a gap after %d", i/2, ev.Seq, prev)
					}
					want = ev.Seq
				}
				if ev.Seq != want {
					t.Fatalf("op %d: event %d, want %d", i/2, ev.Seq, want)
				}
				prev = ev.Seq
			}
			if len(evs) > 0 {
				expectGap = false
			}
		}
	})
}
