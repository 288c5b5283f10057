// Command quickstart walks through pagedkv's block manager: admit prompts
// that share a prefix, decode, fork a sequence for parallel sampling, watch
// copy-on-write, free, and print the block tables and statistics at each
// stage.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/pagedkv/pagedkv/paged"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(w io.Writer) error {
	// A small pool: 4-token blocks, 16 blocks (block 0 is the null block).
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Events: 32})
	if err != nil {
		return err
	}
	show := func(stage string, ids ...paged.SeqID) {
		fmt.Fprintf(w, "\n== %s\n", stage)
		for _, id := range ids {
			table, _ := m.Table(id)
			n, _ := m.Len(id)
			fmt.Fprintf(w, "  %-8v %2d tokens  table %v\n", id, n, table)
		}
		s := m.Stats()
		fmt.Fprintf(w, "  blocks: %d used, %d cached, %d free of %d  | prefix hits %d/%d tokens | copies %d\n",
			s.UsedBlocks, s.CachedBlocks, s.FreeBlocks, s.UsableBlocks, s.PrefixHitTokens, s.PrefixQueryTokens, s.Copies)
	}

	// 1. Two requests share a 9-token system prompt.
	system := []int32{101, 102, 103, 104, 105, 106, 107, 108, 109}
	a, cachedA, err := m.Create(append(system[:9:9], 201, 202), nil)
	if err != nil {
		return err
	}
	b, cachedB, err := m.Create(append(system[:9:9], 301), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "admitted A (%d tokens already cached) and B (%d cached: the system prompt's two full blocks)\n", cachedA, cachedB)
	show("after admission", a, b)

	// 2. Decode three steps: every running sequence gains one token a step.
	var batch paged.Batch
	for step := range 3 {
		for _, id := range []paged.SeqID{a, b} {
			if err := m.Append(id, int32(400+step)); err != nil {
				return err
			}
		}
		if err := m.BuildBatch(&batch, []paged.Scheduled{{ID: a, NewTokens: 1}, {ID: b, NewTokens: 1}}); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nlast step's batch: stride %d, seq lens %v, new-token slots %v\n", batch.Stride, batch.SeqLens, batch.Slots)
	show("after 3 decode steps", a, b)

	// 3. Parallel sampling: fork B; the child shares every block.
	c, err := m.Fork(b)
	if err != nil {
		return err
	}
	show("after fork (B and C share all blocks)", b, c)

	// 4. The first write into the shared, partly filled last block copies it.
	if err := m.Append(c, 999); err != nil {
		return err
	}
	if err := m.Append(b, 998); err != nil {
		return err
	}
	for _, cp := range m.TakeCopies(nil) {
		fmt.Fprintf(w, "\ncopy-on-write directive: copy block %d into block %d before the kernels run\n", cp.Src, cp.Dst)
	}
	show("after copy-on-write", b, c)

	// 5. Free everything: full blocks stay cached for later prompts.
	for _, id := range []paged.SeqID{a, b, c} {
		if err := m.Free(id); err != nil {
			return err
		}
	}
	show("after freeing all")
	d, cachedD, err := m.Create(append(system[:9:9], 777), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\na new request D with the same system prompt finds %d tokens cached\n", cachedD)
	show("after D", d)

	fmt.Fprintf(w, "\nKV events for a router:\n")
	for _, e := range m.DrainEvents(nil) {
		fmt.Fprintf(w, "  #%d %s %d block(s)\n", e.Seq, e.Kind, len(e.Hashes))
	}
	return m.Check()
}
