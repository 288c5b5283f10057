package bench

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/pagedkv/pagedkv/eviction"
)

// CachePolicy is one policy of the prefix-cache study: a name for reports
// and the factory the manager builds it with. A nil Factory with the name
// BeladyName stands for the Belady oracle.
type CachePolicy struct {
	// Name labels the policy in results and reports.
	Name string
	// Factory builds the policy; nil only for the Belady oracle.
	Factory eviction.Factory
}

// CacheStudyConfig configures RunCacheStudy.
type CacheStudyConfig struct {
	// Trace is the prepared trace. Required.
	Trace *CacheTrace
	// Policies are replayed in this order. Required.
	Policies []CachePolicy
	// CapacityTokens lists the cache sizes; each becomes
	// floor(tokens / Trace.BlockSize) blocks. Required.
	CapacityTokens []int64
	// HostTokens sizes a host tier next to every device capacity (0:
	// none). Host blocks = floor(tokens / block size).
	HostTokens int64
	// HostFactor, when positive, sizes the host tier instead as that
	// multiple of each device capacity.
	HostFactor float64
	// Queue, when set, models the waiting queue (see QueueModel) and
	// pins queued requests' cached prefixes. It combines with a host tier
	// (a request retried after the queue's pins are given up counts its
	// host hits once); kvbench cache refuses the pair.
	Queue *QueueModel
	// Workers is the number of replays run at once, each with its own
	// manager. Default runtime.GOMAXPROCS(0).
	Workers int
	// Progress, if set, is called after each replay, from the replay's
	// goroutine (so it must be safe for concurrent use): a progress meter.
	Progress func()
}

// RunCacheStudy replays the trace once per (policy, capacity) pair and
// returns the results policy by policy, capacities in the given order
// within each. Replays are independent, so they run in parallel; the
// figures do not depend on the number of workers.
func RunCacheStudy(cfg CacheStudyConfig) ([]CacheResult, error) {
	if cfg.Trace == nil {
		return nil, fmt.Errorf("%w: no trace", ErrCacheStudy)
	}
	if len(cfg.Policies) == 0 || len(cfg.CapacityTokens) == 0 {
		return nil, fmt.Errorf("%w: no policy or no capacity", ErrCacheStudy)
	}
	bs := int64(cfg.Trace.BlockSize)
	for _, c := range cfg.CapacityTokens {
		if c < bs || c/bs >= 1<<31-1 {
			return nil, fmt.Errorf("%w: capacity of %d tokens must hold at least one %d-token block and fewer than 2^31", ErrCacheStudy, c, bs)
		}
	}
	if cfg.HostTokens < 0 || !(cfg.HostFactor >= 0) || cfg.HostTokens/bs >= 1<<31-1 {
		return nil, fmt.Errorf("%w: host tier of %d tokens or %gx the device", ErrCacheStudy, cfg.HostTokens, cfg.HostFactor)
	}
	for _, c := range cfg.CapacityTokens {
		// Checked in floating point: the product may not fit an int64
		// (or be +Inf), and converting it would wrap.
		if h := cfg.HostFactor * float64(c); h/float64(bs) >= 1<<31-1 {
			return nil, fmt.Errorf("%w: host tier of %gx the device's %d tokens holds 2^31 blocks or more", ErrCacheStudy, cfg.HostFactor, c)
		}
	}
	for _, p := range cfg.Policies {
		if p.Factory == nil && p.Name != BeladyName {
			return nil, fmt.Errorf("%w: policy %q has no factory", ErrCacheStudy, p.Name)
		}
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	nc := len(cfg.CapacityTokens)
	results := make([]CacheResult, len(cfg.Policies)*nc)
	errs := make([]error, len(results))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(results)) {
		wg.Go(func() {
			for i := range jobs {
				p, tokens := cfg.Policies[i/nc], cfg.CapacityTokens[i%nc]
				host := cfg.HostTokens
				if cfg.HostFactor > 0 {
					host = int64(cfg.HostFactor * float64(tokens))
				}
				r, err := cfg.Trace.replay(p, int(tokens/bs), int(min(host/bs, 1<<31-2)), cfg.Queue)
				r.CapacityTokens = tokens
				if host > 0 {
					r.HostTokens = host
				}
				results[i], errs[i] = r, err
				if cfg.Progress != nil {
					cfg.Progress()
				}
			}
		})
	}
	for i := range results {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}
