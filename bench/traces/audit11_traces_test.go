package traces_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// TestAudit11AzureErrorLineNumbers: an error names the file's line, blank
// lines counted. encoding/csv skips empty lines, and the reader used to
// count records instead of lines: a bad row after a blank line was
// reported one line early.
func TestAudit11AzureErrorLineNumbers(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string
	}{
		"after a blank line":  {"TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,1\n\n5,x,1\n", "line 4"},
		"after two blanks":    {"TIMESTAMP,ContextTokens,GeneratedTokens\n\n\n0,1\n", "line 4"},
		"after a quoted line": {"TIMESTAMP,ContextTokens,GeneratedTokens\n\"0\n\",1,1\nnow,1,1\n", "line 4"},
		"no blank":            {"TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,1\n5,-1,1\n", "line 3"},
	} {
		_, err := traces.ReadAzure(strings.NewReader(tc.in))
		if !errors.Is(err, traces.ErrFormat) || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("%s: err %v, want ErrFormat at %s", name, err, tc.want)
		}
	}
}

// TestAudit11EmptyTraces: a trace without a request is refused with
// ErrFormat by both readers (an empty Azure file already was; a header
// alone, or an empty or blank Mooncake file, used to read as a trace of
// no requests, which studies then averaged into NaN).
func TestAudit11EmptyTraces(t *testing.T) {
	for name, in := range map[string]string{
		"azure header only":   "TIMESTAMP,ContextTokens,GeneratedTokens\n",
		"azure header blanks": "TIMESTAMP,ContextTokens,GeneratedTokens\n\n \n",
	} {
		if reqs, err := traces.ReadAzure(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: %d requests, err %v, want ErrFormat", name, len(reqs), err)
		}
	}
	for name, in := range map[string]string{
		"mooncake empty":  "",
		"mooncake blanks": "\n  \n\t\n",
	} {
		if reqs, err := traces.ReadMooncake(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: %d requests, err %v, want ErrFormat", name, len(reqs), err)
		}
	}
	// One request is a trace.
	if reqs, err := traces.ReadAzure(strings.NewReader("TIMESTAMP,ContextTokens,GeneratedTokens\n7,1,1\n")); err != nil || len(reqs) != 1 || reqs[0].Arrival != 0 {
		t.Errorf("azure one request: %+v, %v", reqs, err)
	}
	if reqs, err := traces.ReadMooncake(strings.NewReader(`{"timestamp": 7, "input_length": 1, "output_length": 1}`)); err != nil || len(reqs) != 1 {
		t.Errorf("mooncake one request: %+v, %v", reqs, err)
	}
}

// TestAudit11MooncakeLongLineNamesItsLine: a line longer than the
// reader's 64 MiB limit is an ErrFormat naming its line (the error used
// to be bufio's alone).
func TestAudit11MooncakeLongLineNamesItsLine(t *testing.T) {
	in := `{"timestamp": 0, "input_length": 1, "output_length": 1}` + "\n" +
		`{"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": [` + strings.Repeat("1,", 33<<20) + "1]}\n"
	_, err := traces.ReadMooncake(strings.NewReader(in))
	if !errors.Is(err, traces.ErrFormat) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err %v, want ErrFormat naming line 2", err)
	}
}

// TestAudit11AzureMixedTimestampForms: TIMESTAMP in one file is either
// dates or numbers of seconds. A mix used to be read as is, measuring a
// number's seconds and a date's from different origins (the epoch for
// dates), so arrivals came out decades apart without a word.
func TestAudit11AzureMixedTimestampForms(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,1\n5.5,1,1\n"
	if reqs, err := traces.ReadAzure(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("%+v, err %v: want ErrFormat naming line 3", reqs, err)
	}
}
