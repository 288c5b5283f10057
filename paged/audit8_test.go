package paged

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
	"github.com/pagedkv/pagedkv/eviction"

	"pgregory.net/rapid"
)

// Content audit: an independent model of every sequence's tokens and of
// which prefixes' KV was ever really computed, against which the manager's
// Tokens, Len and every prefix hit are judged.

// contentSeq is the model of one sequence: its tokens (the last spec of
// them drafts), whether it runs, is swapped out, and the tokens an
// AdmitChunk cut off that the caller still owes.
type contentSeq struct {
	tokens  []int32
	spec    int
	state   seqState
	pending []int32
	opts    *SeqOptions
}

// contentModel holds the live sequences and the set of block-aligned
// prefixes whose KV some running sequence computed (accepted tokens only):
// a prefix hit may serve only such prefixes.
type contentModel struct {
	bs    int
	seqs  map[SeqID]*contentSeq
	ids   []SeqID
	legit map[string]bool
}

// prefixKey names a prefix's content: its tokens and every option that
// enters its hashes.
func prefixKey(o *SeqOptions, toks []int32) string {
	mm := ""
	for _, r := range o.MM {
		if r.Start < len(toks) {
			mm += fmt.Sprint(r)
		}
	}
	return fmt.Sprint(o.LoRA, o.Salt, mm, toks)
}

// learn adds the full-block prefixes of every running sequence's accepted
// tokens to the computed set.
func (cm *contentModel) learn() {
	for _, s := range cm.seqs {
		if s.state != seqRunning {
			continue
		}
		acc := len(s.tokens) - s.spec
		for e := cm.bs; e <= acc; e += cm.bs {
			cm.legit[prefixKey(s.opts, s.tokens[:e])] = true
		}
	}
}

// maxHit is the longest prefix of toks, in tokens, whose every block's
// content was computed.
func (cm *contentModel) maxHit(o *SeqOptions, toks []int32) int {
	h := 0
	for e := cm.bs; e <= len(toks); e += cm.bs {
		if !cm.legit[prefixKey(o, toks[:e])] {
			break
		}
		h = e
	}
	return h
}

// TestContentModel drives a manager through chunked prefill, speculative
// decoding, truncation, forks, preemption, swapping and Uncompute, and
// checks after every operation that each sequence's tokens are the
// model's, and at every admission that the prefix hit covers only content
// whose KV was computed (never rejected drafts nor uncomputed tokens).
func TestContentModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.IntRange(1, 3).Draw(t, "bs")
		cfg := Config{BlockSize: bs, NumBlocks: rapid.IntRange(4, 16).Draw(t, "blocks"), HostBlocks: rapid.IntRange(0, 8).Draw(t, "host"), HashMemo: rapid.Bool().Draw(t, "memo")}
		switch rapid.IntRange(0, 3).Draw(t, "groups") {
		case 3:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")}}
		case 1:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: SlidingWindow, Window: rapid.IntRange(1, 6).Draw(t, "window")}}
		case 2:
			cfg.Groups = []Group{{Kind: FullAttention}, {Kind: ChunkedLocal, Chunk: bs * rapid.IntRange(1, 2).Draw(t, "chunk")}}
		}
		cfg.UnifiedFreeQueue = rapid.Bool().Draw(t, "unified")
		cfg.Policy = rapid.SampledFrom([]eviction.Factory{nil, eviction.NewARC, eviction.NewS3FIFO, eviction.NewChain, eviction.NewPriority, eviction.NewSIEVE}).Draw(t, "policy")
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cm := &contentModel{bs: bs, seqs: map[SeqID]*contentSeq{}, legit: map[string]bool{}}
		tok := rapid.Int32Range(0, 2)
		toks := func(label string, lo, hi int) []int32 {
			return rapid.SliceOfN(tok, lo, hi).Draw(t, label)
		}
		pick := func(want func(*contentSeq) bool) (SeqID, *contentSeq) {
			var c []SeqID
			for _, id := range cm.ids {
				if want(cm.seqs[id]) {
					c = append(c, id)
				}
			}
			if len(c) == 0 {
				t.Skip("no sequence")
			}
			id := rapid.SampledFrom(c).Draw(t, "id")
			return id, cm.seqs[id]
		}
		running := func(s *contentSeq) bool { return s.state == seqRunning }
		checkHit := func(op string, id SeqID, cached int) {
			s := cm.seqs[id]
			if h := cm.maxHit(s.opts, s.tokens); cached > h {
				t.Fatalf("%s %v: hit of %d tokens, but only %d of %v were ever computed", op, id, cached, h, s.tokens)
			}
		}
		// phys is what each block's slots hold (the token whose KV was
		// written there, -1 none, -2 never computed), on the device and
		// on the host; the manager's swap and copy directives move it.
		ngroups := max(1, len(cfg.Groups))
		type place struct {
			medium Medium
			block  allocator.BlockID
		}
		phys := map[place][]int32{}
		at := func(md Medium, b allocator.BlockID) []int32 {
			k := place{md, b}
			if phys[k] == nil {
				phys[k] = slices.Repeat([]int32{-1}, bs)
			}
			return phys[k]
		}
		slot := func(b allocator.BlockID) []int32 { return at(Device, b) }
		// moves runs the pending directives: swaps, then copies.
		// state is what a state page holds: the state after the prefix
		// named (prefixKey).
		state := map[place]string{}
		run := func(swaps []Swap, copies []Copy) {
			for _, w := range swaps {
				copy(at(w.Kind.DstMedium(), w.Dst), at(w.Kind.SrcMedium(), w.Src))
				state[place{w.Kind.DstMedium(), w.Dst}] = state[place{w.Kind.SrcMedium(), w.Src}]
			}
			for _, c := range copies {
				copy(slot(c.Dst), slot(c.Src))
				state[place{Device, c.Dst}] = state[place{Device, c.Src}]
			}
		}
		moves := func() {
			run(m.TakeSwaps(nil), m.TakeCopies(nil))
			for _, c := range m.TakeCheckpoints(nil) {
				s := cm.seqs[c.Seq]
				if c.Tokens > len(s.tokens) {
					// The model has not applied the tokens the checkpoint
					// follows (s.tokens[:c.Tokens] would read stale ones).
					t.Fatalf("checkpoint of %v after %d tokens, the model has %d", c.Seq, c.Tokens, len(s.tokens))
				}
				for _, b := range c.Pages {
					state[place{Device, b}] = prefixKey(s.opts, s.tokens[:c.Tokens])
				}
			}
		}
		// write records that the KV of id's tokens from position from on
		// was written (val < -1: written as never computed), after the
		// copies the manager asked for.
		write := func(id SeqID, from int, val int32) {
			if cm.seqs[id].state != seqRunning {
				return
			}
			moves()
			s := cm.seqs[id]
			for g := range ngroups {
				if g > 0 && cfg.Groups[g].Kind == State {
					// The step leaves the state after every token.
					tab, _ := m.TableGroup(id, g)
					for _, b := range tab {
						state[place{Device, b}] = prefixKey(s.opts, s.tokens)
					}
					continue
				}
				tab, err := m.TableGroup(id, g)
				if err != nil {
					t.Fatal(err)
				}
				for p := from; p < len(s.tokens); p++ {
					v := s.tokens[p]
					if val < -1 {
						v = val
					}
					if tab[p/bs] != nullBlock {
						slot(tab[p/bs])[p%bs] = v
					}
				}
			}
		}
		// served checks that the first cached positions of id's table hold
		// its tokens' KV, then records the rest as written.
		served := func(op string, id SeqID, cached int) {
			checkHit(op, id, cached)
			moves()
			s := cm.seqs[id]
			for g := range ngroups {
				if g > 0 && cfg.Groups[g].Kind == State {
					// A hit starts from the state after it.
					tab, _ := m.TableGroup(id, g)
					want := prefixKey(s.opts, s.tokens[:cached])
					for k, b := range tab {
						if got := state[place{Device, b}]; cached > 0 && got != want {
							t.Fatalf("%s %v: hit of %d tokens starts from state page %d (block %d) holding %q, want %q", op, id, cached, k, b, got, want)
						}
					}
					continue
				}
				tab, _ := m.TableGroup(id, g)
				kind := Group{Kind: FullAttention}
				if g > 0 {
					kind = cfg.Groups[g]
				} else if s.opts.Window > 0 {
					kind = Group{Kind: SlidingWindow, Window: s.opts.Window}
				}
				if cached < len(s.tokens) {
					// The first computed query reads its window or chunk
					// before it: the hit must hold it.
					lo, _ := reads(kind, cached)
					for p := lo; p < cached; p++ {
						if tab[p/bs] == nullBlock {
							t.Fatalf("%s %v: hit of %d tokens leaves position %d, which the query at %d reads in group %d, unbacked", op, id, cached, p, cached, g)
						}
					}
				}
				for p := range cached {
					if tab[p/bs] == nullBlock {
						continue // a window's or chunk's hit needs only its tail
					}
					if got := slot(tab[p/bs])[p%bs]; got != s.tokens[p] {
						t.Fatalf("%s %v: hit of %d tokens serves group %d block %d, whose slot %d holds %d, not token %d of %v", op, id, cached, g, tab[p/bs], p%bs, got, p, s.tokens)
					}
				}
			}
			write(id, cached, 0)
		}
		// holds checks that every running sequence's tables hold its
		// tokens' KV wherever they name a block, and every position the
		// next query reads.
		holds := func() {
			moves()
			for _, id := range cm.ids {
				s := cm.seqs[id]
				if s.state != seqRunning {
					continue
				}
				n := len(s.tokens)
				for g := range ngroups {
					if g > 0 && cfg.Groups[g].Kind == State {
						continue // pages, not positions
					}
					kind := Group{Kind: FullAttention}
					if g > 0 {
						kind = cfg.Groups[g]
					} else if s.opts.Window > 0 {
						kind = Group{Kind: SlidingWindow, Window: s.opts.Window}
					}
					tab, _ := m.TableGroup(id, g)
					lo, _ := reads(kind, n)
					for p := range n {
						if tab[p/bs] == nullBlock {
							if p >= lo {
								t.Fatalf("%v group %d: position %d, which the next query (at %d) reads, names no block: %v", id, g, p, n, tab)
							}
							continue
						}
						if got := slot(tab[p/bs])[p%bs]; got != s.tokens[p] {
							t.Fatalf("%v group %d: block %d slot %d holds %d, not token %d of %v (spec %d)", id, g, tab[p/bs], p%bs, got, p, s.tokens, s.spec)
						}
					}
				}
			}
		}
		drop := func(id SeqID) {
			delete(cm.seqs, id)
			cm.ids = slices.DeleteFunc(cm.ids, func(x SeqID) bool { return x == id })
		}
		prompt := func() []int32 {
			// Share a prefix with a live sequence to meet its content.
			var p []int32
			if len(cm.ids) > 0 && rapid.Bool().Draw(t, "share") {
				o := cm.seqs[rapid.SampledFrom(cm.ids).Draw(t, "from")]
				k := rapid.IntRange(0, len(o.tokens)).Draw(t, "shared")
				if rapid.Bool().Draw(t, "aligned") {
					k -= k % bs // where hits and checkpoints are
				}
				p = append(p, o.tokens[:k]...)
			}
			return append(p, toks("tail", 1, 2*bs+1)...)
		}
		t.Repeat(map[string]func(*rapid.T){
			"admit": func(t *rapid.T) {
				p := prompt()
				o := &SeqOptions{
					LoRA:         rapid.Int32Range(0, 1).Draw(t, "lora"),
					Salt:         rapid.SampledFrom([]string{"", "a"}).Draw(t, "salt"),
					AllowFullHit: rapid.Bool().Draw(t, "fullHit"),
				}
				if rapid.Bool().Draw(t, "mm") {
					o.MM = []MMRange{{Start: 0, End: 1, Hash: rapid.SampledFrom([]string{"x", "y"}).Draw(t, "image")}}
				}
				if len(cfg.Groups) == 0 && rapid.Bool().Draw(t, "windowed") {
					o.Window = rapid.IntRange(1, 5).Draw(t, "seqWindow")
				}
				id, err := m.Add(p, o)
				if err != nil {
					return
				}
				cm.seqs[id] = &contentSeq{tokens: slices.Clone(p), state: seqWaiting, opts: o}
				cm.ids = append(cm.ids, id)
				if rapid.Bool().Draw(t, "chunked") {
					cached, rest, err := m.AdmitChunk(id, rapid.IntRange(1, 2*bs+1).Draw(t, "maxNew"), nil)
					if err != nil {
						return
					}
					s := cm.seqs[id]
					s.state = seqRunning
					s.tokens = s.tokens[:len(s.tokens)-len(rest)]
					s.pending = rest
					if !slices.Equal(append(slices.Clone(s.tokens), rest...), p) {
						t.Fatalf("AdmitChunk %v: kept %v and cut %v of %v", id, s.tokens, rest, p)
					}
					served("AdmitChunk", id, cached)
					return
				}
				if cached, err := m.Admit(id); err == nil {
					cm.seqs[id].state = seqRunning
					served("Admit", id, cached)
				}
			},
			"onboard": func(t *rapid.T) {
				id, _ := pick(func(s *contentSeq) bool { return s.state == seqWaiting })
				_, _ = m.Onboard(id) // its directives run at the next check
			},
			"family": func(t *rapid.T) {
				// Siblings under one prefix, each with a whole block of
				// its own: the second's branch point asks for a checkpoint
				// (state groups) that the later ones hit.
				prefix := toks("prefix", bs, 3*bs)
				prefix = prefix[:len(prefix)-len(prefix)%bs]
				for i := range int32(rapid.IntRange(2, 4).Draw(t, "siblings")) {
					p := slices.Clone(prefix)
					for range bs + 1 {
						p = append(p, 10+i)
					}
					id, err := m.Add(p, nil)
					if err != nil {
						return
					}
					cm.seqs[id] = &contentSeq{tokens: p, state: seqWaiting, opts: &SeqOptions{}}
					cm.ids = append(cm.ids, id)
					cached, err := m.Admit(id)
					if err != nil {
						return
					}
					cm.seqs[id].state = seqRunning
					served("Admit", id, cached)
					cm.learn()
				}
			},
			"readmit": func(t *rapid.T) {
				id, s := pick(func(s *contentSeq) bool { return s.state == seqWaiting })
				if cached, err := m.Admit(id); err == nil {
					s.state = seqRunning
					served("Admit", id, cached)
				}
			},
			"append": func(t *rapid.T) {
				id, s := pick(func(s *contentSeq) bool { return s.state != seqSwapped && s.spec == 0 })
				var add []int32
				if len(s.pending) > 0 && rapid.Bool().Draw(t, "giveBack") {
					add = s.pending[:rapid.IntRange(1, len(s.pending)).Draw(t, "chunk")]
				} else {
					add = toks("append", 1, bs+2)
				}
				if err := m.Append(id, add...); err == nil {
					if len(s.pending) > 0 && len(add) <= len(s.pending) && slices.Equal(add, s.pending[:len(add)]) {
						s.pending = s.pending[len(add):]
					} else {
						s.pending = nil
					}
					old := len(s.tokens)
					s.tokens = append(s.tokens, add...)
					write(id, old, 0)
				}
			},
			"step": func(t *rapid.T) {
				// A decode step over the running sequences without drafts
				// (AppendStep or DecodeStep): one token each, in order;
				// on ErrNoSpace at entry n, entries before n have theirs.
				var sched []Scheduled
				for _, id := range cm.ids {
					if s := cm.seqs[id]; running(s) && s.spec == 0 && rapid.Bool().Draw(t, "in") {
						sched = append(sched, Scheduled{ID: id, NewTokens: 1})
					}
				}
				if len(sched) == 0 {
					t.Skip("no sequence")
				}
				next := toks("step", len(sched), len(sched))
				var n int
				var err error
				if rapid.Bool().Draw(t, "decode") {
					var b Batch
					n, err = m.DecodeStep(&b, sched, next)
					if err == nil {
						run(b.Swaps, b.Copies) // the batch took them
						if err := checkBatchReads(m, &b, sched); err != nil {
							t.Fatal(err)
						}
					}
				} else {
					n, err = m.AppendStep(sched, next)
				}
				if errors.Is(err, ErrNever) && n == 0 {
					return // a sequence at its limit: nothing changed
				}
				if err != nil && !errors.Is(err, ErrNoSpace) {
					t.Fatalf("step: %v", err)
				}
				// Every sequence's token first: the step's checkpoints,
				// which the first write takes, may be any of theirs.
				for i, sc := range sched[:n] {
					s := cm.seqs[sc.ID]
					s.tokens = append(s.tokens, next[i])
					s.pending = nil
				}
				for _, sc := range sched[:n] {
					write(sc.ID, len(cm.seqs[sc.ID].tokens)-1, 0)
				}
			},
			"draft": func(t *rapid.T) {
				id, s := pick(running)
				d := toks("drafts", 1, 2*bs+1)
				if err := m.AppendSpeculative(id, d...); err == nil {
					old := len(s.tokens)
					s.tokens = append(s.tokens, d...)
					write(id, old, 0)
					s.spec += len(d)
					s.pending = nil
				}
			},
			"accept": func(t *rapid.T) {
				id, s := pick(func(s *contentSeq) bool { return running(s) && s.spec > 0 })
				n := rapid.IntRange(0, s.spec).Draw(t, "accepted")
				if err := m.AcceptSpeculative(id, n); err != nil {
					t.Fatalf("AcceptSpeculative(%v, %d) of %d: %v", id, n, s.spec, err)
				}
				s.tokens = s.tokens[:len(s.tokens)-(s.spec-n)]
				s.spec = 0
			},
			"truncate": func(t *rapid.T) {
				id, s := pick(func(s *contentSeq) bool { return s.state != seqSwapped })
				n := rapid.IntRange(1, len(s.tokens)).Draw(t, "n")
				if err := m.Truncate(id, n); err == nil {
					s.spec = max(0, s.spec-(len(s.tokens)-n))
					s.tokens = s.tokens[:n]
					s.pending = nil
				}
			},
			"fork": func(t *rapid.T) {
				id, s := pick(running)
				c, err := m.Fork(id)
				if err != nil {
					return
				}
				cm.seqs[c] = &contentSeq{tokens: slices.Clone(s.tokens), spec: s.spec, state: seqRunning, opts: s.opts}
				cm.ids = append(cm.ids, c)
			},
			"preempt": func(t *rapid.T) {
				id, s := pick(running)
				if err := m.Preempt(id); err != nil {
					t.Fatalf("Preempt %v: %v", id, err)
				}
				s.tokens = s.tokens[:len(s.tokens)-s.spec]
				s.spec = 0
				s.state = seqWaiting
			},
			"dropStep": func(t *rapid.T) {
				// A step appended tokens and then dropped the sequence:
				// their KV was never computed.
				id, s := pick(func(s *contentSeq) bool { return running(s) && s.spec == 0 })
				old := len(s.tokens)
				add := toks("dropped", 1, 2*bs+1)
				if err := m.Append(id, add...); err != nil {
					return
				}
				s.tokens = append(s.tokens, add...)
				s.pending = nil
				write(id, old, -2)
				if err := m.Uncompute(id, old); err != nil {
					t.Fatalf("Uncompute(%v, %d) of %d: %v", id, old, len(s.tokens), err)
				}
				if err := m.Preempt(id); err != nil {
					t.Fatalf("Preempt %v: %v", id, err)
				}
				s.state = seqWaiting
			},
			"swap": func(t *rapid.T) {
				id, s := pick(func(s *contentSeq) bool { return s.state != seqWaiting })
				if s.state == seqRunning {
					if err := m.SwapOut(id); err == nil {
						s.state = seqSwapped
					}
				} else if err := m.SwapIn(id); err == nil {
					s.state = seqRunning
				}
			},
			"free": func(t *rapid.T) {
				id, _ := pick(func(*contentSeq) bool { return true })
				if err := m.Free(id); err != nil {
					t.Fatalf("Free %v: %v", id, err)
				}
				drop(id)
			},
			"": func(t *rapid.T) {
				for _, id := range cm.ids {
					s := cm.seqs[id]
					got, err := m.Tokens(id)
					if err != nil || !slices.Equal(got, s.tokens) {
						t.Fatalf("Tokens(%v) = %v, %v; model %v (spec %d)", id, got, err, s.tokens, s.spec)
					}
					if n, err := m.Len(id); err != nil || n != len(s.tokens) {
						t.Fatalf("Len(%v) = %d, %v; model %d", id, n, err, len(s.tokens))
					}
				}
				if err := m.Check(); err != nil {
					t.Fatal(err)
				}
				holds()
				cm.learn()
			},
		})
	})
}
