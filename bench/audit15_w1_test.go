package bench

import (
	"errors"
	"testing"
)

// TestAudit15W1RefusesNegativeSizes: RunW1 refuses a negative request
// count, window, chunk or state size with an error wrapping
// ErrW1Invalid. Before, Requests -1 panicked (makeslice) and a
// negative Window, Chunk or StatePages was taken for none, replaying W1
// with one group as if the layout asked for had run.
func TestAudit15W1RefusesNegativeSizes(t *testing.T) {
	for _, c := range []W1Config{
		{Requests: -1},
		{Requests: 3, Window: -5},
		{Requests: 3, Chunk: -1},
		{Requests: 3, StatePages: -2},
		{Requests: 3, Window: 64, StatePages: -2},
	} {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%+v: panic %v", c, r)
				}
			}()
			_, err = RunW1(c)
		}()
		if !errors.Is(err, ErrW1Invalid) {
			t.Errorf("requests %d window %d chunk %d state %d: %v, want ErrW1Invalid", c.Requests, c.Window, c.Chunk, c.StatePages, err)
		}
	}
}
