package fleet

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit9IndexEveryMethodConcurrently extends the concurrency test of
// Apply and Lookup to every method of Index (run with -race): each of
// four goroutines owns a paged.Manager and streams its events, resyncs
// from its snapshots, sends heartbeats and reads Servers and Stats, under
// a TTL with a clock the goroutines advance. At the end each server's
// answer for its own last prompt (after a resync, for a server the TTL
// expired) is that prompt's every block, whatever the others did
// meanwhile.
func TestAudit9IndexEveryMethodConcurrently(t *testing.T) {
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	x, err := New(Config{TTL: time.Hour, Now: now})
	require.NoError(t, err)
	const workers, bs = 4, 4
	var wg sync.WaitGroup
	errs := make([]error, workers)
	last := make([][]paged.Hash, workers)
	ms := make([]*paged.Manager, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = func() error {
				name := fmt.Sprint("server", w)
				if _, err := x.Register(name); err != nil {
					return err
				}
				m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 24, Events: 1 << 10})
				if err != nil {
					return err
				}
				ms[w] = m
				var evs []paged.Event
				var snap paged.Snapshot
				var sc []Score
				var st []ServerStatus
				for i := range 200 {
					prompt := make([]int32, 3*bs+1)
					for k := range prompt {
						prompt[k] = int32(w*100000 + (i%7)*100 + k)
					}
					id, _, err := m.Create(prompt, nil)
					if err != nil {
						return err
					}
					if err := m.Free(id); err != nil {
						return err
					}
					evs = m.DrainEvents(evs[:0])
					if err := x.Apply(name, evs); err != nil {
						return fmt.Errorf("apply %d: %w", i, err)
					}
					if last[w], err = m.BlockHashes(last[w][:0], prompt, nil); err != nil {
						return err
					}
					switch i % 5 {
					case 0:
						m.Snapshot(&snap)
						if err := x.Resync(name, &snap); err != nil {
							return fmt.Errorf("resync %d: %w", i, err)
						}
					case 1:
						if err := x.Heartbeat(name); err != nil {
							return err
						}
						clock.Add(int64(time.Minute))
					case 2:
						if st, err = x.Servers(st[:0]); err != nil {
							return err
						}
					case 3:
						_ = x.Stats()
					}
					if sc, err = x.Lookup(last[w], sc[:0]); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	// A server that finished early went silent while the others moved
	// the clock on, so the TTL may have expired it: each resyncs once.
	for w := range workers {
		var snap paged.Snapshot
		ms[w].Snapshot(&snap)
		require.NoError(t, x.Resync(fmt.Sprint("server", w), &snap))
	}
	for w := range workers {
		sc, err := x.Lookup(last[w], nil)
		require.NoError(t, err)
		name := fmt.Sprint("server", w)
		for _, s := range sc {
			if s.Name == name {
				assert.Equal(t, len(last[w]), s.Blocks, "%s holds its last prompt", name)
				assert.False(t, s.Partial, name)
			}
		}
	}
}
