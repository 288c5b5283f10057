package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pagedkv/pagedkv/paged"
	"github.com/pagedkv/pagedkv/sched"
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

// sharingNames name the modes in messages.
var sharingNames = [...]string{SharingParallel: "parallel sampling", SharingBeam: "beam search"}

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

// Sharing runs the engine loop of Frag for the paged model with width
// sequences per prompt, sharing blocks through Manager.Fork and
// copy-on-write, and measures the memory saved against no sharing.
//
// Each prompt is a sched beam search of the given width (Options.BeamWidth)
// on a scheduler configured as the paged model of Frag (AdmitFirst,
// CheckBeforeAdmit, recompute): a group is admitted first come first
// served when its prompt fits, and its width sequences are forks of the
// prompt's sequence. Parallel sampling: every sample extends itself and
// decodes the trace's output length on its own. Beam search: after every
// step each of the width new beams picks its parent uniformly at random
// among the current beams (Wright-Fisher resampling, seeded by
// DefaultSharingSeed, drawn for the groups in running order); the
// scheduler forks a parent with c children c-1 times and frees a beam with
// no children, then every beam appends its token (copying its last block
// if still shared). All beams end at the trace's output length. A group
// that finds no block is preempted whole, latest admitted first: its
// sequences are freed and it restarts from its prompt later. All groups
// wait at step 0; cfg.Arrivals, cfg.Allocator and cfg.OnStep are not
// used; cfg.Progress counts finished groups.
func Sharing(reqs []Request, mode SharingMode, width, blockSize int, cfg FragConfig) (SharingResult, error) {
	start := time.Now()
	res := SharingResult{Mode: mode, Width: width, BlockSize: blockSize, Requests: len(reqs)}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	if width < 1 || width > sched.MaxSamples {
		return res, fmt.Errorf("%w: width %d must be in [1, %d]", ErrFragInvalid, width, sched.MaxSamples)
	}
	if mode != SharingParallel && mode != SharingBeam {
		return res, fmt.Errorf("%w: sharing mode %d", ErrFragInvalid, mode)
	}
	if blockSize < 1 || blockSize > cfg.KVTokens {
		return res, fmt.Errorf("%w: block size %d must be in [1, KV tokens %d]", ErrFragInvalid, blockSize, cfg.KVTokens)
	}
	type group struct{ index, prompt, final int }
	gs := make([]group, len(reqs))
	for i, q := range reqs {
		if q.InputTokens < 0 || q.OutputTokens < 0 {
			return res, fmt.Errorf("%w: request %d has negative lengths", ErrFragInvalid, i)
		}
		p, f, _ := Truncate(q.InputTokens, q.OutputTokens, cfg.MaxLen)
		gs[i] = group{index: i, prompt: p, final: f}
	}
	blocks := cfg.KVTokens / blockSize
	if mode == SharingParallel {
		// Samples never merge: a group's blocks at its end are the
		// prompt's full blocks, shared, and each sample's own. A group
		// that needs more than the pool can never finish, since it is
		// preempted and restarted whole: say so before running.
		for _, g := range gs {
			full := g.prompt / blockSize
			if need := full + width*((g.final+blockSize-1)/blockSize-full); need > blocks {
				return res, fmt.Errorf("%w: parallel sampling of width %d: request %d (%d prompt + %d output tokens) needs %d blocks of %d tokens when its samples end, more than the %d of a %d-token budget",
					ErrNeverFits, width, g.index, g.prompt, g.final-g.prompt, need, blockSize, blocks, cfg.KVTokens)
			}
		}
	}
	m, err := paged.New(paged.Config{
		BlockSize:            blockSize,
		NumBlocks:            blocks + 1,
		DisablePrefixCaching: true,
		// One above the longest request: MaxTokens counts the last
		// sampled token, which never gets a slot (as in simulatePaged).
		MaxModelLen: cfg.MaxLen + 1,
	})
	if err != nil {
		return res, fmt.Errorf("bench: sharing: %w", err)
	}
	var feed studyFeed
	finished := 0
	var aborted error
	s, err := sched.New(m, sched.Config{
		MaxRunning:       math.MaxInt32, // no limit but the blocks
		AdmitFirst:       true,
		CheckBeforeAdmit: true,
		Hooks: sched.Hooks{
			Scheduled: func(sc *sched.Scheduled) {
				if sc.Admitted {
					feed.queued -= sc.Start + sc.NewTokens
				}
			},
			// A prompt preempted in the step that admitted it, before
			// its beams were forked.
			Preempted: func(r *sched.Request, _ int, _ bool) {
				feed.queued += r.PromptLen()
				res.Preemptions++
			},
			Restarted: func(r *sched.Request) {
				feed.queued += r.PromptLen()
				res.Preemptions++
			},
			Finished: func(r *sched.Request, _ int) {
				if r.State() == sched.Finished {
					finished++
				}
			},
			Aborted: func(r *sched.Request, err error) {
				g := gs[r.ID()-1]
				aborted = fmt.Errorf("%w: %v of width %d: request %d (%d prompt + %d output tokens) cannot reach its end even alone in the %d blocks of %d tokens of a %d-token budget (%w)",
					ErrNeverFits, sharingNames[mode], width, g.index, g.prompt, g.final-g.prompt, blocks, blockSize, cfg.KVTokens, err)
			},
		},
	})
	if err != nil {
		return res, fmt.Errorf("bench: sharing: %w", err)
	}
	feed = studyFeed{m: m, bs: blockSize, arrived: len(gs)}
	// Token values do not matter with prefix caching off.
	zeros := make([]int32, cfg.MaxLen)
	submit := func(i int) (int, error) {
		g := gs[i]
		if _, err := s.Submit(zeros[:g.prompt], sched.Options{MaxTokens: g.final - g.prompt + 1, BeamWidth: width}); err != nil {
			if errors.Is(err, sched.ErrNever) {
				return 0, fmt.Errorf("%w: prompt %d of %d tokens: %w", ErrNeverFits, g.index, g.prompt, err)
			}
			return 0, err
		}
		return g.prompt, nil
	}
	// Seeded per width: each run repeats, whatever else runs beside it.
	rng := rand.New(rand.NewPCG(DefaultSharingSeed, uint64(width)))
	kids := make([]int, width)
	var tokens []int32
	var parents []int
	var physical, logical, nrun, nseq int64
	for feed.next < len(gs) || s.Busy() {
		if err := feed.fill(submit); err != nil {
			return res, err
		}
		st, err := s.Schedule()
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrNeverFits, err)
		}
		if aborted != nil {
			return res, aborted
		}
		// Physical: blocks referenced at all; logical: what every
		// sequence's table would hold on its own. A prompt admitted in
		// this step counts as its width forks, which share its table:
		// the scheduler forks them when the step completes the prompt.
		physical += int64(m.Stats().UsedBlocks)
		var last *sched.Request
		var ferr error
		s.RunningSeqs(func(r *sched.Request, _ int, seq paged.SeqID, _ int) {
			t, err := m.Table(seq)
			if err != nil {
				ferr = err
				return
			}
			k := int64(1)
			if r.Beams() == 0 {
				k = int64(width)
			}
			logical += k * int64(len(t))
			nseq += k
			if r != last {
				nrun++
				last = r
			}
		})
		if ferr != nil {
			return res, fmt.Errorf("bench: sharing: %w", ferr)
		}
		res.Steps++

		tokens = slices.Grow(tokens[:0], st.Outputs)[:st.Outputs]
		done := finished
		if mode == SharingParallel {
			err = s.Update(tokens)
		} else {
			parents = drawParents(parents, st, rng, kids)
			err = s.UpdateBeams(tokens, parents)
		}
		if err != nil {
			return res, fmt.Errorf("bench: sharing: %w", err)
		}
		if finished > done && cfg.Progress != nil {
			cfg.Progress(finished - done)
		}
	}
	if err := m.Check(); err != nil {
		return res, err
	}
	st := m.Stats()
	if st.UsedBlocks != 0 || st.Sequences != 0 {
		return res, fmt.Errorf("bench: sharing: %d blocks and %d sequences left after the trace drained", st.UsedBlocks, st.Sequences)
	}
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

// drawParents chooses the parents of every beam search's next beams for
// UpdateBeams: for each group that goes on after this step, in running
// order (the groups that decoded, then those admitted in this step), each
// new beam draws its parent uniformly among the current beams; the new
// beams are numbered parent by parent, so the first child of each parent
// keeps its sequence. A group admitted in this step forks its beams from
// the prompt (every beam its own parent: the draw only advances rng, as a
// re-parenting among identical forks would), and a group that ends with
// this step draws nothing.
func drawParents(parents []int, st *sched.Step, rng *rand.Rand, kids []int) []int {
	parents = slices.Grow(parents[:0], st.Outputs)[:st.Outputs]
	k := 0
	for i := range st.Scheduled {
		for j := range st.Scheduled[i].Outputs {
			parents[k] = st.Scheduled[i].Sample + j
			k++
		}
	}
	width := len(kids)
	for pass := range 2 {
		k := 0
		for i := range st.Scheduled {
			sc := &st.Scheduled[i]
			at := k
			k += sc.Outputs
			prompt := sc.Prefill && sc.Outputs == width
			switch {
			case sc.Outputs == 0 || prompt != (pass == 1):
				continue
			case !prompt && sc.Sample != 0: // a later beam of a group drawn at its first
				continue
			case sc.Generated+1 >= sc.Request.MaxTokens(): // the group ends with this step
				continue
			}
			clear(kids)
			for range width {
				kids[rng.IntN(width)]++
			}
			if prompt {
				continue
			}
			for j, c := range kids {
				for range c {
					parents[at] = j
					at++
				}
			}
		}
	}
	return parents
}
