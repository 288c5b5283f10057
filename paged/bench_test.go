package paged_test

import (
	"fmt"
	"testing"

	"github.com/pagedkv/pagedkv/internal/probe"
	"github.com/pagedkv/pagedkv/paged"
)

// BenchmarkDecodeStep: one engine step of n running sequences, each
// appending one token, then building the batch. Every 256 steps the
// sequences are truncated back to 100 tokens so the pool never fills; that
// cost is included. With caching, every 16th append fills a block that is
// hashed (SHA-256) and committed, and once the pool has filled with cached
// blocks each new block evicts one. The pool grows with n (40 blocks per
// sequence), so ns/token across n shows how the per-token cost scales with
// the working set. The steps until the pool has filled (three rounds of
// 256) run before the timing: allocations from the free list, in block
// order, are cheaper than evictions, and counting them made the figure
// depend on how many steps -benchtime allows (about 8% of the steps of a
// 2-second run at 4,096 sequences, 0.05% at 64). With
// PAGEDKV_BENCH_HUGEPAGES set (Linux 6.1 and later), the process's heap
// is moved to 2 MiB pages after the warm-up (hugePages), which shows the
// share of TLB misses; huge-pages is how many it got.
func BenchmarkDecodeStep(b *testing.B) { benchDecodeSizes(b, false) }

// BenchmarkDecodeStepBatched is BenchmarkDecodeStep with each step made
// by one DecodeStep call (each row written as its token is appended) instead
// of an Append call per sequence and BuildBatch.
func BenchmarkDecodeStepBatched(b *testing.B) { benchDecodeSizes(b, true) }

func benchDecodeSizes(b *testing.B, batched bool) {
	for _, n := range []int{64, 256, 1024, 4096} {
		for _, caching := range []bool{false, true} {
			if n != 256 && testing.Short() {
				continue
			}
			b.Run(fmt.Sprintf("seqs=%d/caching=%v", n, caching), func(b *testing.B) {
				benchDecode(b, n, caching, batched)
			})
		}
	}
}

// decoder runs the benchmark's decode steps: every sequence of sched
// appends one token, then the batch is built; every 256 steps, every
// calls the setup back to a short length so the pool never fills.
type decoder struct {
	m     *paged.Manager
	sched []paged.Scheduled
	every func()
	batch paged.Batch
	steps int
	// batched: a step is one DecodeStep call, with the tokens in tokens,
	// rather than an Append call per sequence and BuildBatch.
	batched bool
	tokens  []int32
}

func (d *decoder) step(b *testing.B) {
	if d.batched {
		for i := range d.tokens {
			d.tokens[i] = int32(d.steps)
		}
		if _, err := d.m.DecodeStep(&d.batch, d.sched, d.tokens); err != nil {
			b.Fatal(err)
		}
	} else {
		for _, sc := range d.sched {
			if err := d.m.Append(sc.ID, int32(d.steps)); err != nil {
				b.Fatal(err)
			}
		}
		if err := d.m.BuildBatch(&d.batch, d.sched); err != nil {
			b.Fatal(err)
		}
	}
	d.steps++
	if d.steps%256 == 0 {
		d.every()
	}
}

// decodeLoop times d's steps.
func decodeLoop(b *testing.B, d *decoder) {
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer reportCPU(b, cpu0, len(d.sched))
	for b.Loop() {
		d.step(b)
	}
}

// reportCPU reports the process's CPU time since cpu0 per operation and
// unit (tokens of a step, tokens of a prompt) as cpu-ns/token: steadier
// than the wall time on a machine shared with other work, which also
// counts the time the benchmark waited for a core.
func reportCPU(b *testing.B, cpu0 int64, units int) {
	if cpu1 := cpuTime(); cpu0 > 0 && cpu1 > cpu0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N)/float64(units), "cpu-ns/token")
	}
}

func benchDecode(b *testing.B, n int, caching, batched bool) {
	m, sched := decodeSetup(b, n, 16, n*40, !caching)
	d := &decoder{m: m, sched: sched, batched: batched, tokens: make([]int32, n), every: func() {
		for _, sc := range sched {
			if err := m.Truncate(sc.ID, 100); err != nil {
				b.Fatal(err)
			}
		}
	}}
	// Untimed: the rounds until the pool has filled (the free blocks run
	// out in the third round; from then on each round evicts as many
	// blocks as it fills, and only the n blocks that truncating frees
	// come from the free list).
	for range 3 * 256 {
		d.step(b)
	}
	if st := m.Stats(); caching && (st.FreeBlocks > n || st.Evictions == 0) {
		b.Fatalf("the pool has not filled after the warm-up: %d blocks free, %d evictions", st.FreeBlocks, st.Evictions)
	}
	hp := hugePages()
	decodeLoop(b, d)
	if hp > 0 {
		b.ReportMetric(float64(hp), "huge-pages")
	}
	perToken := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(n)
	b.ReportMetric(perToken, "ns/token")
	// Memory-bound: stated over one cache miss measured now.
	b.ReportMetric(perToken/probe.MemoryWalk(), "x-memwalk")
}

// BenchmarkForkCopyOnWrite: fork a sequence whose last block is partly
// full, write one token into the child (a copy-on-write), free the child.
func BenchmarkForkCopyOnWrite(b *testing.B) {
	m, err := paged.New(paged.Config{NumBlocks: 1024})
	if err != nil {
		b.Fatal(err)
	}
	parent, _, err := m.Create(seqOf(1, 1000), nil)
	if err != nil {
		b.Fatal(err)
	}
	var copies []paged.Copy
	b.ReportAllocs()
	for b.Loop() {
		child, err := m.Fork(parent)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Append(child, 7); err != nil {
			b.Fatal(err)
		}
		copies = m.TakeCopies(copies[:0])
		if err := m.Free(child); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/probe.SHA256(), "x-sha256")
}

// BenchmarkPromptHashLookup: hash a prompt of 8K, 128K or 1M tokens (512,
// 8,192 or 65,536 blocks of 16) and look up its cached prefix, the work of
// admitting a long prompt. "cold": nothing is cached, the lookup stops at
// once; "warm": the whole prompt is cached and the lookup walks every
// block it may hit. hash=prehashed is the scheduler's side when the
// request's goroutine hashed the prompt with a PromptHasher: AddHashed and
// the lookup, no hashing. hash=memo is hash=sha256 with Config.HashMemo:
// a warm prompt's hashes come from the blocks that hold them (cold, it
// hashes as sha256 does, plus one index probe). x-sha-floor is the time
// per prompt over the time of as many 96-byte SHA-256 sums, measured in
// the same sub-benchmark (1.0: nothing but the hashing itself).
func BenchmarkPromptHashLookup(b *testing.B) {
	for _, tokens := range []int{8192, 131072, 1 << 20} {
		if tokens != 131072 && testing.Short() {
			continue
		}
		prompt := seqOf(1, tokens)
		for _, warm := range []bool{false, true} {
			for _, h := range []struct {
				name   string
				hasher func() paged.Hasher
			}{
				{"sha256", func() paged.Hasher { return paged.NewSHA256Hasher() }},
				{"memo", func() paged.Hasher { return paged.NewSHA256Hasher() }},
				{"fast", func() paged.Hasher { return paged.FastHasher{} }},
				{"prehashed", func() paged.Hasher { return paged.NewSHA256Hasher() }},
			} {
				b.Run(fmt.Sprintf("tokens=%d/hash=%s/warm=%v", tokens, h.name, warm), func(b *testing.B) {
					cfg := paged.Config{NumBlocks: len(prompt)/8 + 1, Hasher: h.hasher(), HashMemo: h.name == "memo"}
					benchPromptHashLookup(b, prompt, cfg, h.name == "prehashed", warm)
				})
			}
		}
	}
}

func benchPromptHashLookup(b *testing.B, prompt []int32, cfg paged.Config, prehashed, warm bool) {
	blocks := len(prompt) / 16
	m, err := paged.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	// Either way the sequence slot's buffers are grown before the loop,
	// so that a short run (-benchtime 20x) does not charge the cold case
	// alone with their first allocation: Add without Admit caches
	// nothing, Create caches the whole prompt.
	if warm {
		id, _, err := m.Create(prompt, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			b.Fatal(err)
		}
	} else {
		id, err := m.Add(prompt, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			b.Fatal(err)
		}
	}
	var hashes []paged.Hash
	if prehashed {
		ph, err := m.NewPromptHasher(nil)
		if err != nil {
			b.Fatal(err)
		}
		hashes = ph.Hashes(nil, prompt, nil)
	}
	op := func() { addLookupFree(b, m, prompt, hashes) }
	// Once before timing, so that the lookup's buffer of hits (32 KB at
	// 128K tokens) is grown before the loop too: the setup's Create found
	// no hits, and the warm case's first timed lookup allocated it.
	op()
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		op()
	}
	reportCPU(b, cpu0, len(prompt))
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp/float64(len(prompt)), "ns/token")
	b.ReportMetric(perOp/(float64(blocks)*probe.SHA256()), "x-sha-floor")
}

// addLookupFree adds prompt (with AddHashed when hashes is not nil),
// checks its admission, which looks its prefix up, and frees it: a long
// prompt's admission as BenchmarkPromptHashLookup and BenchmarkChatTurn
// time it.
func addLookupFree(b *testing.B, m *paged.Manager, prompt []int32, hashes []paged.Hash) {
	var id paged.SeqID
	var err error
	if hashes != nil {
		id, err = m.AddHashed(prompt, hashes, nil)
	} else {
		id, err = m.Add(prompt, nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.CanAdmit(id); err != nil {
		b.Fatal(err)
	}
	if err := m.Free(id); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDecodeStepGroups: the decode step of 256 sequences (append one
// token each, build the batch, prefix caching on) for a model of one group
// and for hybrid models of two groups, the second a 128-token sliding
// window (gpt-oss's) or full attention. Every 256 steps every sequence is
// freed and a new 100-token one created, the same for every layout, so
// x-one-group, the time over the one-group step measured in the same run,
// compares like with like.
func BenchmarkDecodeStepGroups(b *testing.B) {
	var one float64
	for _, layout := range []struct {
		name   string
		groups []paged.Group
	}{
		{"one", nil},
		{"full+window128", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 128}}},
		{"full+full", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.FullAttention}}},
		// Several kinds (Hymba's: a window beside a state) and two windows.
		{"full+window128+state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 128}, {Kind: paged.State, Pages: 8}}},
		{"full+window128+window1024", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 128}, {Kind: paged.SlidingWindow, Window: 1024}}},
	} {
		b.Run("seqs=256/groups="+layout.name, func(b *testing.B) {
			const n = 256
			m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: n * 60, Groups: layout.groups})
			if err != nil {
				b.Fatal(err)
			}
			sched := make([]paged.Scheduled, n)
			renew := renewer(b, m, sched, 100+256, 1)
			renew()
			decodeLoop(b, &decoder{m: m, sched: sched, every: renew})
			perStep := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if layout.groups == nil {
				one = perStep
			} else if one > 0 {
				b.ReportMetric(perStep/one, "x-one-group")
			}
		})
	}
}

// renewer returns a function that frees every sequence of sched (none
// the first time) and creates in its place one of 100 fresh tokens,
// reserving maxTokens, scheduled with newTokens new tokens.
func renewer(b *testing.B, m *paged.Manager, sched []paged.Scheduled, maxTokens, newTokens int) func() {
	next := 0
	return func() {
		for i := range sched {
			if sched[i].ID != 0 {
				if err := m.Free(sched[i].ID); err != nil {
					b.Fatal(err)
				}
			}
			next += 1000
			id, _, err := m.Create(seqOf(next, 100), &paged.SeqOptions{MaxTokens: maxTokens})
			if err != nil {
				b.Fatal(err)
			}
			sched[i] = paged.Scheduled{ID: id, NewTokens: newTokens}
		}
	}
}
