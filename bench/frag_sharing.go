package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// SharingMode names a decoding method whose sequences share KV blocks.
type SharingMode uint8

const (
	// SharingParallel is parallel sampling: n outputs of one prompt.
	SharingParallel SharingMode = iota
	// SharingBeam is beam search of a given width.
	SharingBeam
)

// String returns "parallel" or "beam".
func (s SharingMode) String() string {
	if s == SharingBeam {
		return "beam"
	}
	return "parallel"
}

// PaperSharing returns the PagedAttention paper's memory savings for a
// decoding method, in percent, as [low, high] ranges over its widths and
// request rates, on Alpaca and on ShareGPT (their Fig. 15).
func PaperSharing(s SharingMode) (alpaca, sharegpt [2]float64) {
	if s == SharingBeam {
		return [2]float64{37.6, 55.2}, [2]float64{44.3, 66.3}
	}
	return [2]float64{6.1, 9.8}, [2]float64{16.2, 30.5}
}

// SharingResult is the outcome of one sharing run.
type SharingResult struct {
	// Mode is the decoding method run.
	Mode SharingMode
	// Width is the number of sequences per prompt: samples or beams.
	Width int
	// BlockSize is the block size in tokens.
	BlockSize int
	// Saved is the share of KV blocks that sharing saves: 1 - (blocks in
	// use) / (blocks the same sequences would hold without sharing),
	// both summed over steps.
	Saved float64
	// AvgRunning is the average number of running groups (prompts) per
	// step; AvgSequences the average number of running sequences.
	AvgRunning, AvgSequences float64
	// Steps is the number of engine steps to drain the trace and
	// Preemptions the number of groups preempted for lack of blocks.
	Steps, Preemptions int
	// Copies counts copy-on-write block copies.
	Copies uint64
	// Requests is the number of prompts (groups) in the trace.
	Requests int
	// Elapsed is the wall time of the run.
	Elapsed time.Duration
}

// DefaultSharingSeed seeds the beam re-parenting draws, so runs repeat.
const DefaultSharingSeed = 1

// group is one prompt and its sampled sequences or beams.
type group struct {
	index         int
	prompt, final int
	generated     int
	seqs          []paged.SeqID
	fresh         bool
}

// Sharing runs the engine loop of Frag for the paged model with width
// sequences per prompt, sharing blocks through Manager.Fork and
// copy-on-write, and measures the memory saved against no sharing.
//
// A group is admitted first come first served when its prompt fits; its
// width sequences are forks of the prompt's sequence. Parallel sampling:
// every sample decodes the trace's output length on its own. Beam search:
// at every step each of the width new beams picks its parent uniformly at
// random among the current beams (Wright-Fisher resampling, seeded by
// DefaultSharingSeed); a parent with c children is forked c-1 times, a beam
// with no children is freed, then every beam appends its token (copying its
// last block if still shared). All beams end at the trace's output length.
// A group that finds no block is preempted whole, latest admitted first:
// its sequences are freed and it restarts from its prompt later. All
// groups wait at step 0; cfg.Arrivals, cfg.Allocator and cfg.OnStep are not
// used; cfg.Progress counts finished groups.
func Sharing(reqs []Request, mode SharingMode, width, blockSize int, cfg FragConfig) (SharingResult, error) {
	start := time.Now()
	res := SharingResult{Mode: mode, Width: width, BlockSize: blockSize, Requests: len(reqs)}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	if width < 1 || width > 64 {
		return res, fmt.Errorf("%w: width %d must be in [1, 64]", ErrFragInvalid, width)
	}
	if mode != SharingParallel && mode != SharingBeam {
		return res, fmt.Errorf("%w: sharing mode %d", ErrFragInvalid, mode)
	}
	if blockSize < 1 || blockSize > cfg.KVTokens {
		return res, fmt.Errorf("%w: block size %d must be in [1, KV tokens %d]", ErrFragInvalid, blockSize, cfg.KVTokens)
	}
	m, err := paged.New(paged.Config{
		BlockSize:            blockSize,
		NumBlocks:            cfg.KVTokens/blockSize + 1,
		DisablePrefixCaching: true,
		MaxModelLen:          cfg.MaxLen,
	})
	if err != nil {
		return res, fmt.Errorf("bench: sharing: %w", err)
	}
	gs := make([]group, len(reqs))
	for i, q := range reqs {
		if q.InputTokens < 0 || q.OutputTokens < 0 {
			return res, fmt.Errorf("%w: request %d has negative lengths", ErrFragInvalid, i)
		}
		p, f, _ := Truncate(q.InputTokens, q.OutputTokens, cfg.MaxLen)
		gs[i] = group{index: i, prompt: p, final: f}
	}
	// Token values do not matter with prefix caching off.
	zeros := make([]int32, cfg.MaxLen)
	// Seeded per width: each run repeats, whatever else runs beside it.
	rng := rand.New(rand.NewPCG(DefaultSharingSeed, uint64(width)))
	// The queue as in Frag: preempted groups first, then gs in order.
	var running []*group
	q := waitQueue[group]{at: func(i int) *group { return &gs[i] }, arrived: len(gs)}
	head := q.head
	// drop frees every sequence of a group: at its end, or on preemption,
	// after which it restarts from the prompt (a group's forks cannot be
	// resumed one by one without losing their sharing).
	drop := func(g *group) error {
		for _, s := range g.seqs {
			if err := m.Free(s); err != nil {
				return err
			}
		}
		g.seqs = g.seqs[:0]
		return nil
	}
	end := func(g *group) (bool, error) {
		g.fresh = false
		if g.prompt+g.generated < g.final {
			return false, nil
		}
		return true, drop(g)
	}
	var kids []int
	var nextSeqs []paged.SeqID
	var physical, logical, nrun, nseq int64
	finished := 0
	for step := 0; finished < len(gs); step++ {
		for h := head(); h != nil; h = head() {
			switch m.CanAdmitTokens(h.prompt) {
			case paged.AdmitNever:
				return res, fmt.Errorf("%w: prompt %d of %d tokens", ErrNeverFits, h.index, h.prompt)
			case paged.AdmitLater:
				h = nil
			}
			if h == nil {
				break
			}
			// The prompt is computed once; the other width-1 sequences
			// are forks sharing all its blocks.
			id, _, err := m.Create(zeros[:h.prompt], nil)
			if err != nil {
				return res, err
			}
			h.seqs = append(h.seqs[:0], id)
			for range width - 1 {
				c, err := m.Fork(id)
				if err != nil {
					return res, err
				}
				h.seqs = append(h.seqs, c)
			}
			h.generated, h.fresh = 0, true
			q.pop()
			running = append(running, h)
		}
		if len(running) == 0 {
			return res, fmt.Errorf("%w: group %d of %d tokens times %d does not fit an empty budget", ErrNeverFits, head().index, head().final, width)
		}

		for i := 0; i < len(running); i++ {
			g := running[i]
			if g.fresh {
				continue
			}
			if mode == SharingBeam {
				// Draw the new beams' parents; kids[j] counts beam j's.
				kids = kids[:0]
				for range width {
					kids = append(kids, 0)
				}
				for range width {
					kids[rng.IntN(width)]++
				}
				// Fork before freeing, so a dying beam's blocks that a
				// surviving sibling shares are never released in between.
				nextSeqs = nextSeqs[:0]
				for j, s := range g.seqs {
					if kids[j] == 0 {
						continue
					}
					nextSeqs = append(nextSeqs, s)
					for range kids[j] - 1 {
						c, err := m.Fork(s)
						if err != nil {
							return res, err
						}
						nextSeqs = append(nextSeqs, c)
					}
				}
				for j, s := range g.seqs {
					if kids[j] == 0 {
						if err := m.Free(s); err != nil {
							return res, err
						}
					}
				}
				g.seqs = append(g.seqs[:0], nextSeqs...)
			}
			// Each sequence writes its token; a shared partial last block
			// is copied first (copy-on-write), which may need a block too,
			// so the manager's ErrNoSpace is the signal here.
			for j := 0; j < len(g.seqs); j++ {
				err := m.Append(g.seqs[j], 0)
				if err == nil {
					continue
				}
				if !errors.Is(err, paged.ErrNoSpace) {
					return res, err
				}
				// Preempt the latest admitted group and retry this sequence.
				v := running[len(running)-1]
				running = running[:len(running)-1]
				if err := drop(v); err != nil {
					return res, err
				}
				v.fresh = false
				q.push(v)
				res.Preemptions++
				if v == g {
					if len(running) == 0 {
						return res, fmt.Errorf("%w: group %d of %d sequences cannot grow past %d tokens with the whole budget", ErrNeverFits, g.index, width, g.prompt+g.generated)
					}
					break
				}
				j--
			}
			if len(g.seqs) > 0 {
				g.generated++
			}
		}

		// Physical: blocks referenced at all; logical: what every
		// sequence's table would hold on its own.
		st := m.Stats()
		physical += int64(st.UsedBlocks)
		for _, g := range running {
			for _, s := range g.seqs {
				t, err := m.Table(s)
				if err != nil {
					return res, err
				}
				logical += int64(len(t))
			}
			nseq += int64(len(g.seqs))
		}
		nrun += int64(len(running))
		res.Steps++

		var done int
		var err error
		if running, done, err = retire(running, end, cfg.Progress); err != nil {
			return res, err
		}
		finished += done
	}
	if err := m.Check(); err != nil {
		return res, err
	}
	st := m.Stats()
	res.Copies = st.Copies
	if logical > 0 {
		res.Saved = 1 - float64(physical)/float64(logical)
	}
	if res.Steps > 0 {
		res.AvgRunning = float64(nrun) / float64(res.Steps)
		res.AvgSequences = float64(nseq) / float64(res.Steps)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
