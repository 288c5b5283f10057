package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pagedkv/pagedkv/paged"
)

// isTerminal reports whether f is a character device (a terminal), the
// std-only test that needs no extra dependency.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// lockedWriter serializes writes from the progress goroutine and the step
// loop's event printer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// progressLine is the one-line live display. pending counts the replay's
// requests not submitted yet. Refused requests are never done: they are
// shown apart, and the total counts only what was accepted or is still to
// come.
func progressLine(sn Snapshot, pending int) string {
	done := sn.Requests.Finished + sn.Requests.Cancelled + sn.Requests.Aborted
	// Requests posted over HTTP come on top of the replayed ones.
	total := sn.Requests.Submitted + uint64(pending)
	return fmt.Sprintf("step %6d  requests %d/%d done, %d running, %d waiting, %d rejected  kv %5.1f%%  hit %5.1f%%  preempt %d  cow %d  tokens %d",
		sn.Steps, done, total, sn.Requests.Running, sn.Requests.Waiting, sn.Requests.Rejected,
		100*sn.Usage, 100*sn.HitRate, sn.Preemptions, sn.Copies, sn.Tokens.Generated)
}

// writeSummary prints the final report of a run.
func writeSummary(w io.Writer, sn Snapshot, wall time.Duration) {
	r, t := sn.Requests, sn.Tokens
	pct := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return 100 * float64(a) / float64(b)
	}
	fmt.Fprintf(w, "requests     %d submitted (%d with n>1), %d finished, %d cancelled, %d rejected, %d unfinished\n",
		r.Submitted, r.Parallel, r.Finished, r.Cancelled, r.Rejected, r.Waiting+r.Running)
	if r.Rejected > 0 {
		fmt.Fprintf(w, "rejected     %s\n", rejectedLine(r.RejectedBy))
	}
	if r.Aborted > 0 {
		fmt.Fprintf(w, "aborted      %d accepted that can never run in this pool\n", r.Aborted)
	}
	fmt.Fprintf(w, "tokens       %d prompt, %d generated; %d computed at admission, %d from the prefix cache\n",
		t.Prompt, t.Generated, t.Prefill, t.Cached)
	if t.Drafted > 0 {
		fmt.Fprintf(w, "drafts       %d verified, %d accepted (%.1f%%)\n", t.Drafted, t.Accepted, pct(t.Accepted, t.Drafted))
	}
	fmt.Fprintf(w, "steps        %d in %v (peak %d sequences running)\n",
		sn.Steps, wall.Round(time.Millisecond), sn.Sequences.PeakRunning)
	fmt.Fprintf(w, "prefix hits  %.1f%% of prompt tokens queried (%d of %d), %d blocks stored, %d evicted\n",
		100*sn.HitRate, sn.Prefix.HitTokens, sn.Prefix.QueryTokens, sn.Prefix.Stored, sn.Evictions)
	fmt.Fprintf(w, "peak memory  %d of %d blocks (%.1f%%), %d token slots\n",
		sn.Blocks.PeakUsed, sn.Blocks.Usable, pct(uint64(sn.Blocks.PeakUsed), uint64(sn.Blocks.Usable)),
		sn.Blocks.PeakUsed*sn.BlockSize)
	fmt.Fprintf(w, "preemptions  %d\n", sn.Preemptions)
	fmt.Fprintf(w, "copies       %d copy-on-write (%d forks)\n", sn.Copies, sn.Forks)
	fmt.Fprintf(w, "events       %d BlockStored (%d blocks), %d BlockRemoved (%d blocks), %d AllBlocksCleared, %d dropped\n",
		sn.Events.Stored, sn.Events.StoredBlocks, sn.Events.Removed, sn.Events.RemovedBlocks, sn.Events.Cleared, sn.Events.Dropped)
	fmt.Fprintf(w, "manager      %v per step (%v in %d steps)\n",
		sn.ManagerPerStep(), sn.ManagerTime.Round(time.Microsecond), sn.Steps)
	fmt.Fprintf(w, "blocks now   %d free, %d cached, %d used\n", sn.Blocks.Free, sn.Blocks.Cached, sn.Blocks.Used)
	if len(sn.Groups) > 0 {
		fmt.Fprintf(w, "layout       %s\n", sn.Layout)
		for _, g := range sn.Groups {
			fmt.Fprintf(w, "group %-6d %s: %d blocks stored, %d removed", g.Group, g.Kind, g.StoredBlocks, g.RemovedBlocks)
			if g.Checkpoints > 0 {
				fmt.Fprintf(w, ", %d checkpoints", g.Checkpoints)
			}
			fmt.Fprintln(w)
		}
	}
}

// rejectedLine lists the non-zero rejection counts by reason.
func rejectedLine(by map[string]uint64) string {
	var parts []string
	for r := range numReasons {
		if n := by[r.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
	}
	return strings.Join(parts, ", ")
}

// eventPrinter returns an OnEvent hook printing one line per KV event.
func eventPrinter(w io.Writer) func(paged.Event) {
	return func(e paged.Event) {
		first := ""
		if len(e.Hashes) > 0 {
			first = fmt.Sprintf(" first=%x", e.Hashes[0][:6])
		}
		group := ""
		if e.Group > 0 {
			group = fmt.Sprintf(" group=%d", e.Group)
		}
		fmt.Fprintf(w, "event %d %s blocks=%d medium=%v%s%s\n", e.Seq, e.Kind, len(e.Hashes), e.Medium, group, first)
	}
}
