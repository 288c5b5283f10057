package traces_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// Tests that kill the bench/traces mutants of the fifth mutation round
// (docs/testing.md, "Mutation testing, fifth round, part A").

// TestAudit48AzureRepeatedColumnReadsTheFirst names ContextTokens twice:
// the first column of the name is read, as ReadAzure says. Taking the
// last (M315) read 99 and 98 as the context lengths.
func TestAudit48AzureRepeatedColumnReadsTheFirst(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens,contexttokens\n0,10,2,99\n1,20,3,98\n"
	reqs, err := traces.ReadAzure(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].InputTokens != 10 || reqs[1].InputTokens != 20 || reqs[1].OutputTokens != 3 || reqs[1].Arrival != time.Second {
		t.Errorf("got %+v, want context 10 and 20 from the first ContextTokens column", reqs)
	}
}

// TestAudit48AzureNegativeSecondsRefused gives a TIMESTAMP of -1.5
// seconds: an ErrFormat naming line 3, like any timestamp that does not
// parse. Without the check (M321) the trace was read, the negative row
// taken as the earliest arrival.
func TestAudit48AzureNegativeSecondsRefused(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,2\n-1.5,20,3\n"
	reqs, err := traces.ReadAzure(strings.NewReader(in))
	if !errors.Is(err, traces.ErrFormat) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("err %v (requests %+v), want ErrFormat naming line 3", err, reqs)
	}
	// Zero, and negative zero, are the origin.
	reqs, err = traces.ReadAzure(strings.NewReader("TIMESTAMP,ContextTokens,GeneratedTokens\n-0,10,2\n0.5,20,3\n"))
	if err != nil || reqs[1].Arrival != 500*time.Millisecond {
		t.Errorf("-0 and 0.5 seconds: %v %+v", err, reqs)
	}
}
