package bench

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// pagedMemory runs the paged model through the library's own manager,
// prefix caching off (the study measures allocation, not reuse): the
// budget is KVTokens/BlockSize usable blocks, blocks are taken on demand,
// and a request that finds none for its next token is preempted by
// recompute (Manager.Preempt keeps its tokens, Admit resumes it).
type pagedMemory struct {
	m      *paged.Manager
	bs     int
	rem    int     // budget slots short of a whole block
	zeros  []int32 // token values are irrelevant without prefix caching
	budget int
}

func newPagedMemory(blockSize, kvTokens, maxLen int) (*pagedMemory, error) {
	if blockSize < 1 || blockSize > kvTokens {
		return nil, fmt.Errorf("%w: block size %d must be in [1, KV tokens %d]", ErrFragInvalid, blockSize, kvTokens)
	}
	m, err := paged.New(paged.Config{
		BlockSize:            blockSize,
		NumBlocks:            kvTokens/blockSize + 1, // block 0 is the null block
		DisablePrefixCaching: true,
		MaxModelLen:          maxLen,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: frag: %w", err)
	}
	return &pagedMemory{m: m, bs: blockSize, rem: kvTokens % blockSize, zeros: make([]int32, maxLen), budget: kvTokens}, nil
}

// need counts whole blocks: admission takes ceil(tokens/b) of them, the
// partial last one included.
func (p *pagedMemory) need(r *flight) int { return (r.tokens + p.bs - 1) / p.bs * p.bs }

// fits asks the manager's own dry run, so the external-fragmentation test
// uses the admission rule the engine uses.
func (p *pagedMemory) fits(r *flight) bool {
	if r.added {
		a, err := p.m.CanAdmit(paged.SeqID(r.seq))
		return err == nil && a == paged.AdmitOK
	}
	return p.m.CanAdmitTokens(r.tokens) == paged.AdmitOK
}

// admit creates a sequence for a request seen for the first time and
// resumes a preempted one, which the manager still knows (recompute keeps
// its tokens). Both ask the dry run first: a failed Create or Admit
// returns a formatted error, and the head of the queue is refused at most
// steps.
func (p *pagedMemory) admit(r *flight) (bool, error) {
	if r.added {
		a, err := p.m.CanAdmit(paged.SeqID(r.seq))
		if err != nil {
			return false, fmt.Errorf("bench: frag: readmit request %d: %w", r.index, err)
		}
		if a == paged.AdmitNever {
			return false, fmt.Errorf("%w: preempted request %d of %d tokens", ErrNeverFits, r.index, r.tokens)
		}
		if a == paged.AdmitLater {
			return false, nil
		}
		_, err = p.m.Admit(paged.SeqID(r.seq))
		return err == nil, err
	}
	switch p.m.CanAdmitTokens(r.tokens) {
	case paged.AdmitLater:
		return false, nil
	case paged.AdmitNever:
		return false, fmt.Errorf("%w: request %d of %d tokens in %d blocks of %d", ErrNeverFits, r.index, r.tokens, p.budget/p.bs, p.bs)
	}
	id, _, err := p.m.Create(p.zeros[:r.tokens], nil)
	if err != nil {
		return false, err
	}
	r.seq, r.added = uint64(id), true
	return true, nil
}

// grow appends one token. The manager's ErrNoSpace is foreseen rather than
// caught, so a full pool costs no error allocation per step. Without forks
// no block is shared, so only a full last block asks for a new one.
func (p *pagedMemory) grow(r *flight) (bool, error) {
	if r.tokens%p.bs == 0 {
		if st := p.m.Stats(); st.FreeBlocks+st.CachedBlocks == 0 {
			return false, nil
		}
	}
	if err := p.m.Append(paged.SeqID(r.seq), 0); err != nil {
		return false, err
	}
	return true, nil
}

func (p *pagedMemory) preempt(r *flight) error { return p.m.Preempt(paged.SeqID(r.seq)) }

// release ends the request in the manager; a preempted request keeps its
// sequence (waiting) until then.
func (p *pagedMemory) release(r *flight) error {
	r.added = false
	return p.m.Free(paged.SeqID(r.seq))
}

// held reads the request's block table, so the classification counts
// what the manager really allocated, not what the engine expects.
func (p *pagedMemory) held(r *flight) int {
	t, err := p.m.Table(paged.SeqID(r.seq))
	if err != nil {
		panic(fmt.Sprintf("bench: frag: request %d has no table: %v", r.index, err))
	}
	return len(t) * p.bs
}

// free counts cached blocks too: with prefix caching off there are none,
// and they would be reusable anyway.
func (p *pagedMemory) free() int {
	st := p.m.Stats()
	return (st.FreeBlocks + st.CachedBlocks) * p.bs
}

func (p *pagedMemory) unusable() int { return p.rem }

// check runs the manager's invariant check once the trace has drained:
// every block back, no sequence left behind.
func (p *pagedMemory) check() error {
	if err := p.m.Check(); err != nil {
		return err
	}
	if st := p.m.Stats(); st.UsedBlocks != 0 || st.Sequences != 0 {
		return fmt.Errorf("bench: frag: %d blocks and %d sequences left after the trace drained", st.UsedBlocks, st.Sequences)
	}
	return nil
}
