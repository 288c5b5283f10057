package paged

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// audit17Hasher is SHA-256 under another type: the same hashes, but the
// manager does not know it for SHA-256, so it never takes hashes from a
// live sequence (newSharers). A manager with it is the reference a manager
// that shares must agree with bit for bit.
type audit17Hasher struct{ *SHA256Hasher }

// audit17Twin is one operation's pair of sequences: in the manager that
// shares hashes (a) and in the one that hashes everything (b).
type audit17Twin struct{ a, b SeqID }

// errClass names the sentinel an error wraps, for comparing twins.
func errClass(err error) string {
	for _, s := range []error{ErrInvalid, ErrNoSpace, ErrNever, ErrUnknownSequence, ErrSequenceState, ErrNoHostTier} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return "nil"
}

// TestAudit17SharedHashesTwin drives two managers alike, one with the
// SHA-256 hasher (which takes the hashes of a new prompt's leading blocks
// from a live sequence) and one with the same hasher under another type
// (which hashes every block), through every call that adds a sequence
// (Add, AddOwned, Create, AddHashed and AddFromHashes with wrong hashes,
// options with extra keys, windows) or changes its tokens (appends, drafts,
// truncation, chunked admission, forks, preemption, swaps, Uncompute,
// AppendStep, DecodeStep), with block sizes 1 to 32 and hybrid groups
// (sliding-window, chunked-local and state). After every
// step both must give the same answers, tables and hashes, and every
// sequence whose hashes the manager computed must hold its tokens' hashes.
// Sequences added with wrong hashes must never lend them to another.
func TestAudit17SharedHashesTwin(t *testing.T) {
	var shared uint64
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 3, 4, 5, 8, 16, 32}).Draw(rt, "bs")
		cfg := Config{BlockSize: bs, NumBlocks: rapid.IntRange(8, 64).Draw(rt, "blocks")}
		if rapid.Bool().Draw(rt, "host") {
			cfg.HostBlocks = 64
		}
		hybrid := rapid.IntRange(0, 3).Draw(rt, "hybrid") == 0
		if hybrid {
			g := Group{Kind: SlidingWindow, Window: 1 + rapid.IntRange(0, 3*bs).Draw(rt, "gwin")}
			switch rapid.IntRange(0, 2).Draw(rt, "gkind") {
			case 1:
				g = Group{Kind: ChunkedLocal, Chunk: 1 + rapid.IntRange(0, 3*bs).Draw(rt, "gchunk")}
			case 2:
				g = Group{Kind: State, Pages: 1}
			}
			cfg.Groups = []Group{{Kind: FullAttention}, g}
		}
		cfgB := cfg
		cfgB.Hasher = audit17Hasher{NewSHA256Hasher()}
		ma, err := New(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		mb, err := New(cfgB)
		if err != nil {
			rt.Fatal(err)
		}
		if ma.sharers == nil || mb.sharers != nil {
			rt.Fatal("the twins do not differ in sharing")
		}
		// A few beginnings, so that prompts begin alike.
		heads := make([][]int32, 3)
		for h := range heads {
			for j := range 4*bs + 3 {
				heads[h] = append(heads[h], int32(h*1000+j))
			}
		}
		var live []audit17Twin
		var batchA, batchB Batch
		same := func(step int, what string, ea, eb error) {
			if ca, cb := errClass(ea), errClass(eb); ca != cb {
				rt.Fatalf("step %d: %s: sharing manager %v, reference %v", step, what, ea, eb)
			}
		}
		drawPrompt := func() []int32 {
			h := heads[rapid.IntRange(0, len(heads)-1).Draw(rt, "head")]
			p := slices.Clone(h[:rapid.IntRange(0, len(h)).Draw(rt, "headLen")])
			p = append(p, rapid.SliceOfN(rapid.Int32Range(0, 3), 0, 3*bs).Draw(rt, "tail")...)
			if len(p) == 0 {
				p = append(p, 1)
			}
			return p
		}
		drawOpts := func(n int) *SeqOptions {
			switch rapid.IntRange(0, 7).Draw(rt, "opts") {
			case 0:
				return &SeqOptions{LoRA: 1}
			case 1:
				return &SeqOptions{Salt: "s"}
			case 2:
				a := rapid.IntRange(0, n-1).Draw(rt, "mmStart")
				return &SeqOptions{MM: []MMRange{{Start: a, End: rapid.IntRange(a+1, n).Draw(rt, "mmEnd"), Hash: "img"}}}
			case 3:
				if !hybrid {
					return &SeqOptions{Window: 1 + rapid.IntRange(0, 3*bs).Draw(rt, "win")}
				}
			case 4:
				return &SeqOptions{MaxTokens: n + rapid.IntRange(0, 2*bs).Draw(rt, "extra")}
			}
			return nil
		}
		for step := range rapid.IntRange(30, 150).Draw(rt, "steps") {
			op := rapid.IntRange(0, 16).Draw(rt, "op")
			if op < 5 || len(live) == 0 {
				p := drawPrompt()
				opts := drawOpts(len(p))
				var tw audit17Twin
				var ea, eb error
				switch op {
				case 0:
					tw.a, ea = ma.AddOwned(slices.Clone(p), opts)
					tw.b, eb = mb.AddOwned(slices.Clone(p), opts)
				case 1:
					var ca, cb int
					tw.a, ca, ea = ma.Create(p, opts)
					tw.b, cb, eb = mb.Create(p, opts)
					if ca != cb {
						rt.Fatalf("step %d: Create: %d cached, reference %d", step, ca, cb)
					}
				case 2:
					// Caller-supplied hashes that do not name the tokens: the
					// sequence trusts them, but none may lend them.
					wrong := make([]Hash, len(p)/bs)
					for i := range wrong {
						wrong[i][0], wrong[i][1] = 0xee, byte(i)
					}
					tw.a, ea = ma.AddHashed(p, wrong, opts)
					tw.b, eb = mb.AddHashed(p, wrong, opts)
				case 3:
					wrong := make([]Hash, rapid.IntRange(0, len(p)/bs).Draw(rt, "nh"))
					for i := range wrong {
						wrong[i][0], wrong[i][1] = 0xdd, byte(i)
					}
					tw.a, ea = ma.AddFromHashes(wrong, len(p), opts)
					tw.b, eb = mb.AddFromHashes(wrong, len(p), opts)
				default:
					tw.a, ea = ma.Add(p, opts)
					tw.b, eb = mb.Add(p, opts)
				}
				same(step, fmt.Sprintf("add op %d", op), ea, eb)
				if ea == nil {
					live = append(live, tw)
				}
			} else {
				k := rapid.IntRange(0, len(live)-1).Draw(rt, "seq")
				tw := live[k]
				run, _ := ma.Running(tw.a)
				n, _ := ma.Len(tw.a)
				var ea, eb error
				switch {
				case op == 5:
					ea, eb = ma.Free(tw.a), mb.Free(tw.b)
					live = slices.Delete(live, k, k+1)
				case !run && op < 8:
					c := 1 + rapid.IntRange(0, n-1).Draw(rt, "chunk")
					var ca, cb int
					var ra, rb []int32
					ca, ra, ea = ma.AdmitChunk(tw.a, c, nil)
					cb, rb, eb = mb.AdmitChunk(tw.b, c, nil)
					if ca != cb || !slices.Equal(ra, rb) {
						rt.Fatalf("step %d: AdmitChunk: %d cached, rest %v; reference %d, %v", step, ca, ra, cb, rb)
					}
				case !run && op == 8 && cfg.HostBlocks > 0:
					ea, eb = ma.SwapIn(tw.a), mb.SwapIn(tw.b)
				case !run:
					var ca, cb int
					ca, ea = ma.Admit(tw.a)
					cb, eb = mb.Admit(tw.b)
					if ca != cb {
						rt.Fatalf("step %d: Admit: %d cached, reference %d", step, ca, cb)
					}
				case op == 6:
					c := 1 + rapid.IntRange(0, n-1).Draw(rt, "cut")
					ea, eb = ma.Truncate(tw.a, c), mb.Truncate(tw.b, c)
				case op == 7:
					d := rapid.SliceOfN(rapid.Int32Range(0, 3), 1, 2*bs).Draw(rt, "drafts")
					ea, eb = ma.AppendSpeculative(tw.a, d...), mb.AppendSpeculative(tw.b, d...)
					if ea == nil && eb == nil {
						acc := rapid.IntRange(0, len(d)).Draw(rt, "accept")
						ea, eb = ma.AcceptSpeculative(tw.a, acc), mb.AcceptSpeculative(tw.b, acc)
					}
				case op == 8:
					var ca, cb SeqID
					ca, ea = ma.Fork(tw.a)
					cb, eb = mb.Fork(tw.b)
					if ea == nil && eb == nil {
						live = append(live, audit17Twin{ca, cb})
					}
				case op == 9:
					ea, eb = ma.Preempt(tw.a), mb.Preempt(tw.b)
				case op == 10:
					ea, eb = ma.SwapOut(tw.a), mb.SwapOut(tw.b)
				case op == 11:
					c := rapid.IntRange(0, n).Draw(rt, "computed")
					ea, eb = ma.Uncompute(tw.a, c), mb.Uncompute(tw.b, c)
				case op == 12:
					tok := rapid.Int32Range(0, 3).Draw(rt, "stepTok")
					_, ea = ma.AppendStep([]Scheduled{{ID: tw.a, NewTokens: 1}}, []int32{tok})
					_, eb = mb.AppendStep([]Scheduled{{ID: tw.b, NewTokens: 1}}, []int32{tok})
				case op == 13:
					tok := rapid.Int32Range(0, 3).Draw(rt, "decodeTok")
					_, ea = ma.DecodeStep(&batchA, []Scheduled{{ID: tw.a, NewTokens: 1}}, []int32{tok})
					_, eb = mb.DecodeStep(&batchB, []Scheduled{{ID: tw.b, NewTokens: 1}}, []int32{tok})
				default:
					ts := rapid.SliceOfN(rapid.Int32Range(0, 3), 1, 2*bs).Draw(rt, "append")
					ea, eb = ma.Append(tw.a, ts...), mb.Append(tw.b, ts...)
				}
				same(step, fmt.Sprintf("op %d", op), ea, eb)
			}
			audit17Compare(rt, ma, mb, live, step)
		}
		if err := ma.Check(); err != nil {
			rt.Fatal(err)
		}
		shared += ma.Stats().HashesRecalled
	})
	// The test must exercise what it checks: hashes taken from live
	// sequences, many times over.
	if shared < 100 {
		t.Fatalf("only %d hashes taken from live sequences", shared)
	}
	t.Logf("%d hashes taken from live sequences", shared)
}

// audit17Compare fails unless the twins hold the same sequences, tokens,
// tables and hashes, and every sequence of a whose hashes the manager
// computed holds its tokens' hashes computed whole.
func audit17Compare(rt *rapid.T, ma, mb *Manager, live []audit17Twin, step int) {
	for _, tw := range live {
		sa, err := ma.seq(tw.a)
		if err != nil {
			rt.Fatalf("step %d: %v", step, err)
		}
		sb, err := mb.seq(tw.b)
		if err != nil {
			rt.Fatalf("step %d: %v", step, err)
		}
		if !slices.Equal(sa.tokens, sb.tokens) || !slices.Equal(sa.blocks, sb.blocks) || sa.state != sb.state {
			rt.Fatalf("step %d: %v: tokens, table or state differ from the reference's", step, tw.a)
		}
		if !slices.Equal(sa.hashes, sb.hashes) {
			rt.Fatalf("step %d: %v (%d tokens): %d hashes differ from the reference's %d", step, tw.a, len(sa.tokens), len(sa.hashes), len(sb.hashes))
		}
		if sa.ownHashes && !sa.unknown {
			// The chain hashed whole (BlockHashes would refuse a
			// multimodal range that a truncation cut).
			want := ma.chain.extend(nil, sa.tokens, sa.keys(), 0, len(sa.hashes))
			if !slices.Equal(sa.hashes, want) {
				rt.Fatalf("step %d: %v: hashes are not its tokens'", step, tw.a)
			}
		}
	}
	sa, sb := ma.Stats(), mb.Stats()
	if sa.BlocksHashed+sa.HashesRecalled != sb.BlocksHashed+sb.HashesRecalled {
		rt.Fatalf("step %d: %d+%d hashes produced, reference %d+%d", step, sa.BlocksHashed, sa.HashesRecalled, sb.BlocksHashed, sb.HashesRecalled)
	}
	sa.BlocksHashed, sa.HashesRecalled, sb.BlocksHashed, sb.HashesRecalled = 0, 0, 0, 0
	if sa != sb {
		rt.Fatalf("step %d: stats differ:\n%+v\nreference\n%+v", step, sa, sb)
	}
}
