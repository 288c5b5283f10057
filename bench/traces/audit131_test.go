package traces_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// Tests that kill the bench/traces mutants of the eighty-fourth mutation
// round (docs/testing.md, "Mutation testing, eighty-fourth round").

const audit131Head = "TIMESTAMP,ContextTokens,GeneratedTokens\n"

// TestAudit131AzureDateBounds: a date in 2262 is refused though its
// nanoseconds since the epoch still fit an int64 until April (the bound
// is the documented 1970-2261, and TestBadInputTimestamps tried only
// 9999, so a bound of 2262 went unseen), and exactly 10^9 seconds is the
// largest number taken, measured exactly.
func TestAudit131AzureDateBounds(t *testing.T) {
	for _, in := range []string{
		audit131Head + "2262-01-01 00:00:00.0,1,1\n",
		audit131Head + "2023-11-16 18:15:46.0,1,1\n2262-04-01 00:00:00,1,1\n",
		audit131Head + "5,1,1\n1000000000.5,1,1\n",
	} {
		if reqs, err := traces.ReadAzure(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%q: err %v (requests %+v), want ErrFormat", in, err, reqs)
		}
	}
	reqs, err := traces.ReadAzure(strings.NewReader(audit131Head + "5,1,1\n1e9,2,3\n"))
	if err != nil || len(reqs) != 2 || reqs[1].Arrival != 1e9*time.Second-5*time.Second {
		t.Errorf("10^9 seconds: %v %+v", err, reqs)
	}
}

// TestAudit131AzureBlankLinesSkipped: a line of spaces or a tab between
// requests is skipped like an empty one (encoding/csv skips only empty
// lines and hands the others over as one field), so the trace reads as
// its two requests with their arrivals.
func TestAudit131AzureBlankLinesSkipped(t *testing.T) {
	reqs, err := traces.ReadAzure(strings.NewReader(audit131Head + "1,10,2\n   \n\t\n3,20,4\n  \n"))
	want := []traces.Request{
		{Arrival: 0, InputTokens: 10, OutputTokens: 2},
		{Arrival: 2 * time.Second, InputTokens: 20, OutputTokens: 4},
	}
	if err != nil || len(reqs) != len(want) {
		t.Fatalf("got %v %+v, want %+v", err, reqs, want)
	}
	for i := range want {
		if g := reqs[i]; g.Arrival != want[i].Arrival || g.InputTokens != want[i].InputTokens || g.OutputTokens != want[i].OutputTokens {
			t.Errorf("request %d: %+v, want %+v", i, reqs[i], want[i])
		}
	}
}
