package sched

// Load is a scheduler's outstanding work as a router in front of several
// servers reads it (the signals NVIDIA Dynamo's KV router and llm-d's
// scorers take from their engines: running and waiting requests, the
// prefill still to compute, the decode still to run).
type Load struct {
	// Running and Waiting are Scheduler.Running and Scheduler.Waiting.
	Running, Waiting int
	// PrefillTokens are the prompt tokens not yet computed: every token of
	// a waiting sequence (its prefix-cache hits are known only when it is
	// admitted; a preempted one counts what it must recompute, a
	// swapped-out one only what its preemption's step left uncomputed)
	// and the chunks a running sequence has still to compute. A sampled
	// token whose KV is not computed yet is decode work (DecodeTokens).
	PrefillTokens int
	// DecodeTokens bound the tokens still to decode: for each live sample
	// its MaxTokens (or MaxModelLen limit) less the outputs it has, and for
	// a prompt that has not forked yet, that many for each of its samples.
	// A stop token can end a sample earlier.
	DecodeTokens int
	// KVTokens are the tokens whose KV the running sequences hold now and
	// the waiting ones will hold on admission (a sample not yet forked
	// counts once): what each decode step of the server reads.
	KVTokens int
}

// Load returns the scheduler's outstanding work. It costs O(running +
// waiting), the beams of swapped-out beam searches included, and
// allocates nothing; like every method, it must be called
// from the goroutine that owns the scheduler (between steps, or between
// Schedule and Update, where the step's tokens count as computed).
func (s *Scheduler) Load() Load {
	l := Load{Running: s.Running(), Waiting: s.Waiting()}
	for _, e := range s.running {
		if e.where != inRunning {
			continue // done in this step, swept at its end
		}
		l.PrefillTokens += len(e.rest)
		l.DecodeTokens += e.remaining()
		l.KVTokens += e.total()
	}
	for _, e := range s.waiting.buf[s.waiting.head:] {
		l.addWaiting(e)
		if s.grouped > 0 && e.req.beam && e.where == inSwapped {
			// The other beams of a swapped-out group wait through this
			// one, outside the queue.
			for _, b := range e.req.samples {
				if b.where == inGroup {
					l.addWaiting(b)
				}
			}
		}
	}
	return l
}

// addWaiting adds the work of a waiting sequence. Its pending token (a
// swapped-out sample's last output, whose KV is not computed yet) is
// decode work, counted by remaining as a running sample's is: the step
// that swaps it back decodes it.
func (l *Load) addWaiting(e *entry) {
	l.PrefillTokens += e.length + len(e.rest) - e.computed
	l.DecodeTokens += e.remaining()
	l.KVTokens += e.total()
}

// remaining returns the tokens e has still to decode, times the samples
// its prompt will fork if it has not yet.
func (e *entry) remaining() int {
	n := max(e.limit-e.outputs, 0)
	if !e.req.forked {
		n *= e.req.n
	}
	return n
}
