package paged

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// drawAdversarialLayout draws a layout of several kinds for the default
// mode with the sizes that stress the hybrid rules: windows smaller than a
// block, of one token, of exactly a block; chunks that are not a multiple
// of the block size or smaller than a window; State groups of one page
// and of two; Shared groups reading any attention group.
func drawAdversarialLayout(t *rapid.T, bs int) []Group {
	window := func(label string) Group {
		w := rapid.SampledFrom([]int{1, 2, bs - 1, bs, bs + 1, 2*bs + 1}).Draw(t, label)
		if w < 1 || rapid.IntRange(0, 3).Draw(t, label+" random") == 0 {
			w = rapid.IntRange(1, 6*bs).Draw(t, label+" any")
		}
		return Group{Kind: SlidingWindow, Window: w}
	}
	groups := []Group{{Kind: FullAttention}}
	for range rapid.IntRange(2, 4).Draw(t, "groups") {
		switch rapid.IntRange(0, 5).Draw(t, "kind") {
		case 0, 1:
			groups = append(groups, window("window"))
		case 2:
			groups = append(groups, Group{Kind: ChunkedLocal, Chunk: rapid.IntRange(1, 6*bs).Draw(t, "chunk")})
		case 3:
			groups = append(groups, Group{Kind: State, Pages: rapid.IntRange(1, 2).Draw(t, "pages")})
		case 4:
			groups = append(groups, Group{Kind: FullAttention})
		case 5:
			target := rapid.IntRange(0, len(groups)-1).Draw(t, "target")
			if k := groups[target].Kind; k == State || k == Shared {
				target = 0
			}
			groups = append(groups, Group{Kind: Shared, Target: target})
		}
	}
	return groups
}

// hitNeeds is an independent statement of which blocks group g needs for
// a prefix hit of L blocks (L > 0): [from, L). A window of W tokens needs
// the blocks of positions [L*bs-W+1, L*bs) and, as vLLM's scan does, the
// last block before L even when W is 1; a chunk the blocks of the chunk
// of position L*bs; full attention every block.
func hitNeeds(g Group, bs, L int) int {
	switch g.Kind {
	case SlidingWindow:
		first := max(0, L*bs-g.Window+1)
		return min(first/bs, L-1)
	case ChunkedLocal:
		return L * bs / g.Chunk * g.Chunk / bs
	}
	return 0
}

// oracleHit is the longest hit of at most limit blocks for s on m, found
// by trying every length from the longest: every group's needed blocks
// cached (on either tier) and, with State groups, a whole checkpoint
// after exactly L blocks.
func oracleHit(m *Manager, s *sequence, limit int) int {
	limit = min(limit, len(s.hashes))
	groups := m.cfg.Groups
next:
	for L := limit; L > 0; L-- {
		for g, grp := range groups {
			if grp.Kind == Shared || grp.Kind == State {
				continue
			}
			for k := hitNeeds(grp, m.bs, L); k < L; k++ {
				if _, ok := m.bp.findIn(&s.hashes[k], g); !ok {
					continue next
				}
			}
		}
		for g, grp := range groups {
			if grp.Kind != State {
				continue
			}
			if !m.ret.ckpt {
				continue next
			}
			// A checkpoint after L blocks: every page of every State
			// group cached under its key.
			for j := range grp.Pages {
				k := ckptKey(&s.hashes[L-1], j)
				if _, ok := m.bp.findIn(&k, g); !ok {
					continue next
				}
			}
		}
		return L
	}
	return 0
}

// checkLookup compares m's hybrid lookup for waiting sequence id with
// oracleHit, and checks its rows: every needed entry of every group names
// the block (or host copy) the index holds for the content there.
func checkLookup(m *Manager, id SeqID) error {
	s, err := m.seq(id)
	if err != nil || s.state == seqRunning {
		return nil
	}
	limit := m.fullBlocks(len(s.tokens) - 1)
	want := oracleHit(m, s, limit)
	got := m.lookupGroups(s, limit)
	if got != want {
		return errors.New("lookup " + itoa(got) + " blocks, longest hit in every group " + itoa(want))
	}
	for g, grp := range m.cfg.Groups {
		if grp.Kind == Shared || grp.Kind == State {
			continue
		}
		row := m.hits
		if g > 0 {
			row = m.ghits[g-1]
		}
		if len(row) != got {
			return errors.New("group " + itoa(g) + " row of " + itoa(len(row)) + " entries, hit " + itoa(got))
		}
		for k := hitNeeds(grp, m.bs, got); k < got && got > 0; k++ {
			if id, ok := m.bp.findIn(&s.hashes[k], g); !ok || row[k] != id || row[k] == nullBlock {
				return errors.New("group " + itoa(g) + " row entry " + itoa(k) + " is " + itoa(int(row[k])))
			}
		}
	}
	return nil
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestAudit14MultiKindFastPathsLookupAndReads drives two default-mode
// managers of an adversarial layout of several kinds (drawAdversarialLayout)
// with the same operations, one appending through Append's fast paths (the
// inline write with several windows, appendOne, startPair) and one through
// the general path, and requires after every step the same outcome (error,
// every group's table, counters), Check on both, every running sequence's
// last tokens readable through every group (checkBatchReads), and before
// every admission a lookup equal to the longest prefix that is a hit in
// every group (oracleHit), with rows naming the cached blocks.
func TestAudit14MultiKindFastPathsLookupAndReads(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bs := rapid.SampledFrom([]int{1, 2, 3, 4, 16}).Draw(t, "bs")
		groups := drawAdversarialLayout(t, bs)
		cfg := Config{BlockSize: bs, NumBlocks: rapid.IntRange(8, 48).Draw(t, "blocks"), Groups: groups, Events: 1 << 12}
		if rapid.IntRange(0, 3).Draw(t, "compat") == 0 {
			// The vLLM-compatible mode takes any layout without prefix
			// caching (its windows slide before the space check).
			cfg.UnifiedFreeQueue, cfg.DisablePrefixCaching = true, true
		}
		if rapid.IntRange(0, 2).Draw(t, "host") == 0 {
			cfg.HostBlocks = rapid.IntRange(4, 32).Draw(t, "hostBlocks")
		}
		fast, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var ids []SeqID
		// sb, sdb and sfresh are the general-path manager's batches: it
		// builds every batch the fast one builds, so that both end the
		// same steps and hand out the same directives (a step's end
		// changes later decisions: a copy's source, for one, is held
		// until its copy is handed out).
		var b, db, sb, sdb, sfresh Batch
		var evs []Event
		var snap Snapshot
		held := map[groupContent]int{}
		next := int32(0)
		for step := range rapid.IntRange(1, 100).Draw(t, "steps") {
			op := rapid.IntRange(0, 9).Draw(t, "op")
			var ef, es error
			switch {
			case op == 0 || len(ids) == 0:
				idf := addTwinPrompt(t, fast, slow, 6*bs, step)
				ids = append(ids, idf)
				if err := checkLookup(fast, idf); err != nil {
					t.Fatalf("step %d: %v: %v", step, groups, err)
				}
				_, ef = fast.Admit(idf)
				_, es = slow.Admit(idf)
				for _, m := range []*Manager{fast, slow} {
					m.TakeCheckpoints(nil)
					m.TakeCopies(nil)
				}
			case op == 1:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "free")
				ef, es = fast.Free(ids[i]), slow.Free(ids[i])
				ids = append(ids[:i], ids[i+1:]...)
			case op == 2:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "admit")
				if err := checkLookup(fast, ids[i]); err != nil {
					t.Fatalf("step %d: %v: %v", step, groups, err)
				}
				_, ef = fast.Admit(ids[i])
				_, es = slow.Admit(ids[i])
			case op == 3:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "preempt")
				ef, es = fast.Preempt(ids[i]), slow.Preempt(ids[i])
			default:
				i := rapid.IntRange(0, len(ids)-1).Draw(t, "append")
				decode := rapid.Bool().Draw(t, "decode")
				for range rapid.IntRange(1, 3*bs).Draw(t, "tokens") {
					next++
					if s, err := fast.seq(ids[i]); decode && err == nil && s.state == seqRunning {
						// DecodeStep into a persistent batch, which must
						// read as a batch built afresh.
						sched := []Scheduled{{ID: ids[i], NewTokens: 1}}
						_, ef = fast.DecodeStep(&db, sched, []int32{next})
						if ef == nil {
							var fresh Batch
							if err := fast.BuildBatch(&fresh, sched); err != nil {
								t.Fatalf("step %d: BuildBatch after DecodeStep: %v", step, err)
							}
							if err := checkBatchReads(fast, &db, sched); err != nil {
								t.Fatalf("step %d: DecodeStep: %v: %v", step, groups, err)
							}
							if err := sameRows(&db, &fresh); err != nil {
								t.Fatalf("step %d: DecodeStep's batch against a fresh one: %v: %v", step, groups, err)
							}
						}
					} else {
						ef = fast.Append(ids[i], next)
					}
					es = slow.appendTokens(ids[i], []int32{next}, false)
					if s, err := fast.seq(ids[i]); decode && ef == nil && es == nil && err == nil && s.state == seqRunning {
						// DecodeStep built a batch, then BuildBatch a
						// fresh one: the general path's manager builds
						// both too.
						sched := []Scheduled{{ID: ids[i], NewTokens: 1}}
						if err := slow.BuildBatch(&sdb, sched); err != nil {
							t.Fatalf("step %d: general path's BuildBatch after DecodeStep: %v", step, err)
						}
						if err := sameRows(&db, &sdb); err != nil {
							t.Fatalf("step %d: DecodeStep's batch against the general path's: %v: %v", step, groups, err)
						}
						if err := slow.BuildBatch(&sfresh, sched); err != nil {
							t.Fatalf("step %d: general path's BuildBatch: %v", step, err)
						}
					}
					if (ef == nil) != (es == nil) || ef != nil {
						break
					}
				}
				if cfg.UnifiedFreeQueue && errors.Is(ef, ErrNoSpace) && errors.Is(es, ErrNoSpace) {
					// vLLM's order slid the windows past the last token
					// before refusing (appendGroups): a server preempts.
					if e1, e2 := fast.Preempt(ids[i]), slow.Preempt(ids[i]); e1 != nil || e2 != nil {
						t.Fatalf("step %d: Preempt after a refused Append: %v %v", step, e1, e2)
					}
				}
			}
			if (ef == nil) != (es == nil) || errors.Is(ef, ErrNoSpace) != errors.Is(es, ErrNoSpace) {
				t.Fatalf("step %d op %d: fast path %v, general path %v", step, op, ef, es)
			}
			if fast.Stats() != slow.Stats() {
				t.Fatalf("step %d op %d: stats differ:\nfast    %+v\ngeneral %+v", step, op, fast.Stats(), slow.Stats())
			}
			for _, id := range ids {
				for g := range groups {
					tf, e1 := fast.TableGroup(id, g)
					ts, e2 := slow.TableGroup(id, g)
					if (e1 == nil) != (e2 == nil) || !slices.Equal(tf, ts) {
						t.Fatalf("step %d op %d: %v group %d: fast %v (%v), general %v (%v)", step, op, id, g, tf, e1, ts, e2)
					}
				}
			}
			for _, m := range []*Manager{fast, slow} {
				if err := m.Check(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			}
			evs = fast.DrainEvents(evs[:0])
			if err := replayGroups(held, evs, fast, &snap); err != nil {
				t.Fatalf("step %d op %d: %v: %v", step, op, groups, err)
			}
			var sched []Scheduled
			for _, id := range ids {
				if s, err := fast.seq(id); err == nil && s.state == seqRunning && len(s.tokens) > 0 {
					sched = append(sched, Scheduled{ID: id, NewTokens: rapid.IntRange(1, min(len(s.tokens), 2)).Draw(t, "new")})
				}
			}
			if len(sched) > 0 {
				err := fast.BuildBatch(&b, sched)
				if es := slow.BuildBatch(&sb, sched); (err == nil) != (es == nil) {
					t.Fatalf("step %d: BuildBatch: fast path's manager %v, general path's %v", step, err, es)
				}
				if err == nil {
					if err := checkBatchReads(fast, &b, sched); err != nil {
						t.Fatalf("step %d: %v: %v", step, groups, err)
					}
				} else if sched[0].NewTokens == 1 || !errors.Is(err, ErrInvalid) {
					// Two new tokens may read a released block; one never.
					if slices.ContainsFunc(sched, func(s Scheduled) bool { return s.NewTokens > 1 }) && errors.Is(err, ErrInvalid) {
						continue
					}
					t.Fatalf("step %d: BuildBatch: %v", step, err)
				}
			}
		}
	})
}

// sameRows compares the block tables of every group of two batches of
// one entry, which may be of different widths: the wider is null-padded.
func sameRows(a, b *Batch) error {
	rows := func(x *Batch) [][]int32 { return append([][]int32{x.Tables[:x.Stride]}, x.GroupTables...) }
	ra, rb := rows(a), rows(b)
	for g := range rb {
		x, y := ra[g], rb[g]
		if len(x) > len(y) {
			x, y = y, x
		}
		same := slices.Equal(x, y[:len(x)])
		for _, v := range y[len(x):] {
			same = same && v == int32(nullBlock)
		}
		if !same {
			return errors.New("group " + itoa(g) + " rows differ: " + fmtRow(ra[g]) + " fresh " + fmtRow(rb[g]))
		}
	}
	return nil
}

func fmtRow(r []int32) string {
	out := "["
	for i, v := range r {
		if i > 0 {
			out += " "
		}
		out += itoa(int(v))
	}
	return out + "]"
}

// groupContent is a content as a router's index keys it with groups.
type groupContent struct {
	h      Hash
	group  int
	medium Medium
}

// replayGroups folds evs into held, a consumer's count of the blocks
// holding each (content, group, tier), and compares it with m's Snapshot.
func replayGroups(held map[groupContent]int, evs []Event, m *Manager, snap *Snapshot) error {
	for _, ev := range evs {
		switch ev.Kind {
		case BlockStored:
			for _, h := range ev.Hashes {
				held[groupContent{h, ev.Group, ev.Medium}]++
			}
		case BlockRemoved:
			for _, h := range ev.Hashes {
				k := groupContent{h, ev.Group, ev.Medium}
				if held[k] == 0 {
					return errors.New("event removes content group " + itoa(ev.Group) + " it never stored")
				}
				if held[k]--; held[k] == 0 {
					delete(held, k)
				}
			}
		case BlockMoved:
			for _, h := range ev.Hashes {
				k := groupContent{h, ev.Group, ev.From}
				if held[k] == 0 {
					return errors.New("event moves content of group " + itoa(ev.Group) + " not held")
				}
				if held[k]--; held[k] == 0 {
					delete(held, k)
				}
				held[groupContent{h, ev.Group, ev.Medium}]++
			}
		case AllBlocksCleared:
			for k := range held {
				if k.medium == ev.Medium {
					delete(held, k)
				}
			}
		default:
			return errors.New("event kind " + ev.Kind.String())
		}
	}
	if d := m.Stats().EventsDropped; d != 0 {
		return errors.New("events dropped")
	}
	m.Snapshot(snap)
	count := map[groupContent]int{}
	for _, b := range snap.Blocks {
		count[groupContent{b.Hash, b.Group, b.Medium}]++
	}
	if len(count) != len(held) {
		return errors.New("snapshot holds " + itoa(len(count)) + " contents, the event stream " + itoa(len(held)))
	}
	for k, n := range count {
		if held[k] != n {
			return errors.New("group " + itoa(k.group) + " medium " + k.medium.String() + ": snapshot " + itoa(n) + " blocks, events " + itoa(held[k]))
		}
	}
	return nil
}
