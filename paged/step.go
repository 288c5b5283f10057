package paged

import "fmt"

// AppendStep appends one token to each sequence of a decode step:
// tokens[i] to sched[i].ID, in order, with the same effect as calling
// Append(sched[i].ID, tokens[i]) for i = 0, 1, ... (NewTokens is not
// read, so the sched a scheduler passes to BuildBatch serves here too).
// DecodeStep also builds the step's batch as it appends.
//
// It checks every entry before it changes anything: a length mismatch, an
// unknown handle, a sequence named twice, a negative token, a sequence
// that is swapped out or has drafts pending, or one that would outgrow its
// limit is an error (ErrInvalid, ErrUnknownSequence, ErrSequenceState,
// ErrNever, naming the entry) and nothing changes. Space is the one thing
// it finds out as it goes, as the loop of Append calls would: when the
// pool runs out at entry n, the entries before n have their tokens, entry
// n and those after it do not, and it returns n with an error wrapping
// ErrNoSpace; the caller preempts a sequence and calls again with
// sched[n:] and tokens[n:] (without the preempted entry), as it would
// resume the loop. On success it returns len(sched). It allocates nothing
// once the sequences' buffers have grown.
func (m *Manager) AppendStep(sched []Scheduled, tokens []int32) (int, error) {
	if _, err := m.checkStep("AppendStep", sched, tokens, nil); err != nil {
		return 0, err
	}
	all := m.seqs
	for i, sc := range sched {
		idx, gen := sc.ID.parts()
		if s := &all[idx]; s.inPlace(gen, tokens[i]) { // checkStep checked idx
			s.tokens = append(s.tokens, tokens[i])
		} else if err := m.appendMore(sc.ID, tokens[i:i+1]); err != nil {
			return i, err
		}
	}
	return len(sched), nil
}

// DecodeStep runs a decode step's bookkeeping in one call: it appends
// tokens[i] to sched[i].ID for every entry, as AppendStep does, and builds
// b for sched, as BuildBatch(b, sched) would then, writing each entry's
// row as it appends its token, after one pass that checks every entry
// (about 1-3 ns less CPU time per token than the Append loop and
// BuildBatch up to about a thousand sequences, the same beyond;
// docs/performance.md, "Decode step API"). The token appended is its
// sequence's one new token of the step, so every entry's NewTokens must
// be 1.
//
// Everything AppendStep or BuildBatch would refuse is refused before the
// manager changes (b's layout may, as with BuildBatch): besides
// AppendStep's errors, a nil b or one BuildBatch
// refuses, a NewTokens other than 1, a waiting sequence
// (ErrSequenceState), or a table that would outgrow a fixed Stride
// (ErrInvalid). When the pool runs out at entry n (ErrNoSpace), the
// entries before n have their tokens, the others do not, b holds no
// usable batch (its rows stay consistent for the next call, and an
// automatic Stride keeps the width it had before the call), and it
// returns n: the caller preempts a sequence, appends to the entries from
// n on (AppendStep) and builds the batch of the sequences left
// (BuildBatch). On success it returns len(sched). It allocates nothing
// once b's and the sequences' buffers have grown.
func (m *Manager) DecodeStep(b *Batch, sched []Scheduled, tokens []int32) (int, error) {
	if err := m.checkBatch("DecodeStep", b); err != nil {
		return 0, err
	}
	b.layout()
	widest, err := m.checkStep("DecodeStep", sched, tokens, b)
	if err != nil {
		return 0, err
	}
	old := b.Stride
	if widest > b.Stride {
		b.widen(widest)
	}
	if n, err := m.decode(b, sched, tokens); err != nil {
		if b.Stride != old {
			// The width was for tokens some entries did not get: back to
			// the width the loop of Append calls, which stops before its
			// BuildBatch, leaves (the rows are rebuilt by the next call).
			b.relayout(old)
		}
		return n, err
	}
	m.finishBatch(b, sched)
	return len(sched), nil
}

// decode is DecodeStep's pass: each entry's token, then its row. It
// returns how many entries took their token before an error. The common
// entries (the token written in place, the row unchanged but for its
// lengths and slot) are taken by decodeRun, in a loop that calls
// nothing; decode takes the others one at a time (Append's other paths,
// syncRow) and hands the entry back to decodeRun for its row.
func (m *Manager) decode(b *Batch, sched []Scheduled, tokens []int32) (int, error) {
	n := len(sched)
	b.size(n)
	b.Slots = resize(b.Slots, n) // one slot per entry, the new token's
	done := -1                   // an entry whose token is in, its row not written
	for i := 0; ; {
		in := false
		if i, in = m.decodeRun(b, sched, tokens, i, done); i == n {
			return n, nil
		}
		sc := sched[i]
		if !in {
			if err := m.appendMore(sc.ID, tokens[i:i+1]); err != nil {
				return i, err
			}
		}
		s := &m.seqs[uint32(sc.ID)]
		if r := &b.rows[i]; r.id != sc.ID || r.version != s.version || r.filled != len(s.blocks) {
			if len(s.blocks) > b.Stride {
				panic("paged: DecodeStep: a table outgrew the width checkStep made room for")
			}
			b.syncRow(i, sc.ID, s)
		}
		done = i
	}
}

// decodeRun appends each entry's token from i on and writes its row, as
// long as the token goes in place (sequence.inPlace, in the buffer's
// capacity) and the row needs no more than its lengths and slot; entry
// done has its token already. It returns the first entry it stopped at,
// changing nothing of it (len(sched) if none), or, with true, having
// appended its token: its row needs syncRow first.
func (m *Manager) decodeRun(b *Batch, sched []Scheduled, tokens []int32, i, done int) (int, bool) {
	n := len(sched)
	seqs, lens, qlens, nblocks := b.Seqs[:n], b.SeqLens[:n], b.QueryLens[:n], b.BlocksPerSeq[:n]
	qstart, rows, slots, all := b.QueryStart[1:n+1], b.rows[:n], b.Slots[:n], m.seqs
	tokens = tokens[:n]
	for ; i < n; i++ {
		sc := &sched[i]
		idx, gen := sc.ID.parts()
		s := &all[idx] // checkStep checked idx
		ntok := len(s.tokens)
		if i != done {
			// Written through a reslice: append would call the runtime
			// when the buffer is full, and a call in the loop costs
			// every entry.
			if !s.inPlace(gen, tokens[i]) || ntok == cap(s.tokens) {
				return i, false
			}
			s.tokens = s.tokens[:ntok+1]
			s.tokens[ntok] = tokens[i]
			ntok++
		}
		nb := len(s.blocks)
		r := &rows[i]
		if r.id != sc.ID || r.version != s.version || r.filled != nb {
			return i, true
		}
		seqs[i], lens[i], qlens[i], nblocks[i] = sc.ID, int32(ntok), 1, int32(nb)
		// The new token is the last: its slot is in the row's last block.
		_, off := m.split(ntok - 1)
		slots[i], qstart[i] = int64(r.last)*int64(m.bs)+int64(off), int32(i+1)
	}
	return n, false
}

// checkStep is the validation of AppendStep (b nil) and DecodeStep: each
// entry as Append checks it, no sequence twice (marked with a new stamp,
// as BuildBatch marks them), and for DecodeStep what BuildBatch checks of
// the entry once its token is appended; it returns the most blocks a
// table will then have. op names the call in errors.
func (m *Manager) checkStep(op string, sched []Scheduled, tokens []int32, b *Batch) (widest int, err error) {
	if len(tokens) != len(sched) {
		return 0, errorf(ErrInvalid, "%s: %d tokens for %d sequences", op, len(tokens), len(sched))
	}
	m.nextStamp()
	longest := 0 // the most tokens an entry has before its token
	for i := 0; i < len(sched); i++ {
		// The common entries in a loop of their own, which calls
		// nothing (a call in the loop would make the compiler save and
		// reload its values on every entry); the others one by one.
		var n int
		if i, n = m.checkRun(sched, tokens, i, b == nil); i == len(sched) {
			longest = max(longest, n)
			break
		}
		longest = max(longest, n)
		if err := m.checkEntry(op, sched[i], tokens[i:i+1], b); err != nil {
			return 0, fmt.Errorf("%w (%s entry %d)", err, op, i)
		}
		longest = max(longest, len(m.seqs[uint32(sched[i].ID)].tokens))
	}
	widest = m.ceilBlocks(longest + 1)
	if b != nil && b.fixed && widest > b.Stride {
		// The entry is found again, for the message.
		for i, sc := range sched {
			if s := &m.seqs[uint32(sc.ID)]; m.ceilBlocks(len(s.tokens)+1) > b.Stride {
				return 0, errorf(ErrInvalid, "%s: %v would have %d blocks, wider than Batch.Stride %d (%s entry %d)",
					op, sc.ID, m.ceilBlocks(len(s.tokens)+1), b.Stride, op, i)
			}
		}
	}
	return widest, nil
}

// checkRun checks and marks sched's entries from i on as long as they are
// the common ones: a running sequence that may take a token without a
// window's limit, own (see seqFields.ownEnd: running, no drafts) or
// without drafts, named once, with a token that is not negative and,
// unless any (AppendStep), one new token. It returns the first entry it
// did not pass (len(sched) if none) and the most tokens a passed entry
// has.
func (m *Manager) checkRun(sched []Scheduled, tokens []int32, i int, any bool) (int, int) {
	all, stamp, limit, longest := m.seqs, m.stamp, m.fullLen, 0
	tokens = tokens[:len(sched)]
	for ; i < len(sched); i++ {
		sc := &sched[i]
		idx, gen := sc.ID.parts()
		if uint(idx) >= uint(len(all)) {
			break
		}
		s := &all[idx]
		n := len(s.tokens)
		if s.gen != gen || s.mark == stamp || tokens[i] < 0 || n >= limit || !(any || sc.NewTokens == 1) ||
			!((s.ownVer == s.version && s.ownEnd != 0) || (s.state == seqRunning && !s.windowed && s.spec == 0)) {
			break
		}
		s.mark = stamp
		longest = max(longest, n)
	}
	return i, longest
}

// checkEntry checks one entry of a step (see checkStep) that the common
// case did not let through and marks its sequence.
func (m *Manager) checkEntry(op string, sc Scheduled, tok []int32, b *Batch) error {
	s, err := m.seq(sc.ID)
	if err != nil {
		return err
	}
	if err := m.checkAppend(s, sc.ID, tok, false); err != nil {
		return err
	}
	if b != nil {
		if s.state != seqRunning {
			return errorf(ErrSequenceState, "%s: %v is %v, not running", op, sc.ID, s.state)
		}
		if sc.NewTokens != 1 {
			return errorf(ErrInvalid, "%s: %v has %d new tokens; a decode step's entry has 1, the token it appends", op, sc.ID, sc.NewTokens)
		}
	}
	if s.mark == m.stamp {
		return errorf(ErrInvalid, "%s: %v scheduled twice", op, sc.ID)
	}
	s.mark = m.stamp
	return nil
}
