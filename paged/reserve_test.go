package paged_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
	"pgregory.net/rapid"
)

// drawReserve draws a Config.Reserve for the state machines: none, or one
// that the run may spend midway, so that buffers come from the reserve,
// then from the heap, under every operation the machines make.
func drawReserve(t *rapid.T) paged.Reserve {
	return paged.Reserve{
		Sequences: rapid.IntRange(0, 6).Draw(t, "reserve sequences"),
		Tokens:    rapid.SampledFrom([]int{0, 0, 16, 100, 400}).Draw(t, "reserve tokens"),
	}
}

// mallocs returns the heap allocations f makes, as testing.AllocsPerRun
// counts them, for one call of f (no warm-up call: a reserve is spent by
// the calls it serves).
func mallocs(f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.Mallocs - a.Mallocs
}

// reserveLayouts are the layouts the reserve tests run: one group, and a
// full-attention group beside a window group (W1-H) or a state group.
var reserveLayouts = []struct {
	name   string
	groups []paged.Group
}{
	{"one group", nil},
	{"window", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}}},
	{"state", []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.State, Pages: 2}}},
}

// TestReserveNoAllocs: with a reserve for the sequences it will hold, a
// fresh manager allocates nothing for them from the first call on: adding
// them with hints (AddOwned, which makes no token copy, or Add, whose
// copy the reserve's tokens hold), admitting them, decoding
// within the hints, preempting, readmitting and freeing them. Without the
// reserve the same calls allocate (the test's measure sees them). Hybrid
// layouts run in the vLLM-compatible mode (UnifiedFreeQueue): the default
// mode's retention lists (window pins, checkpoint pages) are not
// reserved.
func TestReserveNoAllocs(t *testing.T) {
	for _, l := range reserveLayouts {
		for _, add := range []string{"AddOwned", "Add"} {
			testReserveNoAllocs(t, l.name, l.groups, add)
		}
	}
}

func testReserveNoAllocs(t *testing.T, name string, groups []paged.Group, add string) {
	const bs, n = 16, 40
	t.Run(name+"/"+add, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		lens, hints := make([]int, n), make([]int, n)
		total := 0
		for i := range lens {
			lens[i] = 1 + rng.IntN(200)
			hints[i] = lens[i] + 1 + rng.IntN(40)
			total += hints[i]
		}
		run := func(r paged.Reserve) uint64 {
			m, err := paged.New(paged.Config{BlockSize: bs, NumBlocks: 1024, Groups: groups, UnifiedFreeQueue: groups != nil, Reserve: r})
			if err != nil {
				t.Fatal(err)
			}
			prompts := make([][]int32, n)
			for i := range prompts {
				prompts[i] = make([]int32, lens[i], hints[i])
				for j := range prompts[i] {
					prompts[i][j] = int32(i%3*1000 + j) // some shared prefixes
				}
			}
			ids := make([]paged.SeqID, n)
			var fail error
			a := mallocs(func() {
				for i := range ids {
					var id paged.SeqID
					var err error
					if add == "Add" {
						id, err = m.Add(prompts[i], &paged.SeqOptions{MaxTokens: hints[i]})
					} else {
						id, err = m.AddOwned(prompts[i], &paged.SeqOptions{MaxTokens: hints[i]})
					}
					fail = errors.Join(fail, err)
					ids[i] = id
				}
				for i, id := range ids {
					if _, err := m.Admit(id); err != nil {
						fail = errors.Join(fail, err)
					}
					for k := lens[i]; k < hints[i]-1; k++ {
						fail = errors.Join(fail, m.Append(id, int32(k)))
					}
				}
				for i := 0; i < n; i += 3 {
					fail = errors.Join(fail, m.Preempt(ids[i]))
					_, err := m.Admit(ids[i])
					fail = errors.Join(fail, err)
				}
				for _, id := range ids {
					fail = errors.Join(fail, m.Free(id))
				}
			})
			if fail != nil {
				t.Fatal(fail)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			return a
		}
		if a := run(paged.Reserve{Sequences: n, Tokens: total}); a != 0 {
			t.Errorf("with a reserve for the %d sequences: %d allocations", n, a)
		}
		if a := run(paged.Reserve{}); a < n {
			t.Errorf("without a reserve: %d allocations for %d sequences; the measure misses them", a, n)
		}
	})
}

// TestReserveInvalid: a reserve out of bounds is refused with ErrInvalid
// naming the field.
func TestReserveInvalid(t *testing.T) {
	for _, r := range []paged.Reserve{
		{Sequences: -1}, {Tokens: -1},
		{Sequences: paged.MaxReserveSequences + 1}, {Tokens: paged.MaxReserveTokens + 1},
	} {
		_, err := paged.New(paged.Config{NumBlocks: 8, Reserve: r})
		if !errors.Is(err, paged.ErrInvalid) {
			t.Errorf("Reserve %+v: New returns %v, want ErrInvalid", r, err)
		}
	}
	if _, err := paged.New(paged.Config{NumBlocks: 8, Reserve: paged.Reserve{Sequences: 4, Tokens: 100}}); err != nil {
		t.Fatal(err)
	}
}

// TestReserveSameAnswers drives two managers, one with a reserve too
// small for the run (so that it runs out midway) and one without, through
// the same random calls, and requires the same answers, tables and
// statistics throughout: the reserve moves buffers, never a decision.
func TestReserveSameAnswers(t *testing.T) {
	for _, l := range reserveLayouts {
		for _, unified := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unified=%v", l.name, unified), func(t *testing.T) {
				cfg := paged.Config{BlockSize: 4, NumBlocks: 64, Groups: l.groups, UnifiedFreeQueue: unified, MaxModelLen: 256}
				plain, err := paged.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				cfg.Reserve = paged.Reserve{Sequences: 6, Tokens: 300}
				res, err := paged.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ms := []*paged.Manager{plain, res}
				rng := rand.New(rand.NewPCG(3, uint64(len(l.groups))))
				var ids [2][]paged.SeqID
				groups := max(1, len(l.groups))
				for step := range 3000 {
					op := rng.IntN(7)
					var k int
					if len(ids[0]) > 0 {
						k = rng.IntN(len(ids[0]))
					}
					// Every call is made on both managers with the same
					// arguments; answers are compared as strings.
					var ans [2]string
					switch {
					case op <= 1 || len(ids[0]) == 0:
						n := 1 + rng.IntN(60)
						prompt := make([]int32, n)
						for j := range prompt {
							prompt[j] = int32(rng.IntN(3)*100 + j)
						}
						opts := &paged.SeqOptions{}
						if rng.IntN(4) > 0 {
							opts.MaxTokens = n + rng.IntN(80)
						}
						owned := rng.IntN(2) == 0
						for i, m := range ms {
							var id paged.SeqID
							var err error
							if owned {
								p := append(make([]int32, 0, max(n, opts.MaxTokens)), prompt...)
								id, err = m.AddOwned(p, opts)
							} else {
								id, err = m.Add(prompt, opts)
							}
							ans[i] = fmt.Sprint(id, err)
							if err == nil {
								ids[i] = append(ids[i], id)
							}
						}
					case op == 2:
						for i, m := range ms {
							c, err := m.Admit(ids[i][k])
							ans[i] = fmt.Sprint(c, err)
						}
					case op == 3:
						tok := int32(rng.IntN(500))
						for i, m := range ms {
							ans[i] = fmt.Sprint(m.Append(ids[i][k], tok))
						}
					case op == 4:
						for i, m := range ms {
							ans[i] = fmt.Sprint(m.Preempt(ids[i][k]))
						}
					case op == 5:
						for i, m := range ms {
							f, err := m.Fork(ids[i][k])
							ans[i] = fmt.Sprint(f, err)
							if err == nil {
								ids[i] = append(ids[i], f)
							}
						}
					default:
						for i, m := range ms {
							ans[i] = fmt.Sprint(m.Free(ids[i][k]))
							ids[i] = slices.Delete(ids[i], k, k+1)
						}
					}
					if ans[0] != ans[1] {
						t.Fatalf("step %d, op %d: without a reserve %s, with %s", step, op, ans[0], ans[1])
					}
					if len(ids[0]) > 0 {
						for g := range groups {
							a, errA := plain.TableGroup(ids[0][k%len(ids[0])], g)
							b, errB := res.TableGroup(ids[1][k%len(ids[1])], g)
							if !slices.Equal(a, b) || fmt.Sprint(errA) != fmt.Sprint(errB) {
								t.Fatalf("step %d: group %d tables %v (%v) and %v (%v)", step, g, a, errA, b, errB)
							}
						}
					}
				}
				if plain.Stats() != res.Stats() {
					t.Fatalf("statistics differ:\n%+v\n%+v", plain.Stats(), res.Stats())
				}
				for _, m := range ms {
					if err := m.Check(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}
