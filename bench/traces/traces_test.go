package traces_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pagedkv/pagedkv/bench/traces"
)

func TestEmbedded(t *testing.T) {
	if n := len(traces.AzureConv()); n != 19366 {
		t.Fatalf("azure: %d requests, want 19366", n)
	}
	m := traces.MooncakeSynthetic()
	if len(m) != 3993 || len(m[0].HashIDs) == 0 {
		t.Fatalf("mooncake: %d requests, first with %d hash IDs", len(m), len(m[0].HashIDs))
	}
}

func TestReadAzureForms(t *testing.T) {
	for name, in := range map[string]string{
		"2023":            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,2\n2023-11-16 18:15:47.6805900,20,3\n",
		"2024 zone":       "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00.100000+00:00,10,2\n2024-05-10 00:00:01.100000+00:00,20,3\n",
		"crlf bom order":  "\ufeffGeneratedTokens,TIMESTAMP,ContextTokens,Extra\r\n2,2023-11-16 18:15:46,10,x\r\n3,2023-11-16 18:15:47,20,y\r\n",
		"seconds":         "timestamp,contexttokens,generatedtokens\n5.5,10,2\n6.5,20,3\n",
		"trailing blanks": "TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,2\n1,20,3\n\n",
	} {
		reqs, err := traces.ReadAzure(strings.NewReader(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(reqs) != 2 || reqs[0].InputTokens != 10 || reqs[1].OutputTokens != 3 || reqs[0].Arrival != 0 || reqs[1].Arrival != time.Second {
			t.Errorf("%s: got %+v", name, reqs)
		}
	}
}

func TestReadAzureErrors(t *testing.T) {
	for name, in := range map[string]string{
		"empty":        "",
		"no column":    "TIMESTAMP,ContextTokens\n0,1\n",
		"bad time":     "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n",
		"negative":     "TIMESTAMP,ContextTokens,GeneratedTokens\n0,-1,1\n",
		"not a number": "TIMESTAMP,ContextTokens,GeneratedTokens\n0,a,1\n",
		"short row":    "TIMESTAMP,ContextTokens,GeneratedTokens\n0,1\n",
	} {
		if _, err := traces.ReadAzure(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
}

func TestReadMooncakeErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not json": "{",
		"missing":  `{"timestamp": 1, "input_length": 2}`,
		"negative": `{"timestamp": 1, "input_length": -2, "output_length": 1}`,
	} {
		if _, err := traces.ReadMooncake(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(p, []byte("TIMESTAMP,ContextTokens,GeneratedTokens\n0,3,4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reqs, err := traces.ReadFile(p, "")
	if err != nil || len(reqs) != 1 || reqs[0].OutputTokens != 4 {
		t.Fatalf("ReadFile: %+v, %v", reqs, err)
	}
	if _, err := traces.ReadFile(filepath.Join(dir, "t.txt"), ""); !errors.Is(err, traces.ErrFormat) {
		t.Errorf("unknown extension: %v", err)
	}
	if _, err := traces.ReadFile(p, "parquet"); !errors.Is(err, traces.ErrFormat) {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := traces.ReadFile(filepath.Join(dir, "missing.csv"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestBadInputTimestamps: timestamps whose arrival cannot be represented
// in a time.Duration are refused with ErrFormat; they used to wrap around
// (Mooncake milliseconds past 2^63 ns) or make arrivals from undefined
// UnixNano values (Azure dates outside 1970-2261), silently.
func TestBadInputTimestamps(t *testing.T) {
	for name, in := range map[string]string{
		"year 1":    "TIMESTAMP,ContextTokens,GeneratedTokens\n0001-01-01 00:00:00.0,1,1\n2023-11-16 18:15:46.0,1,1\n",
		"year 9999": "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.0,1,1\n9999-12-31 23:59:59.0,1,1\n",
		"year 1969": "TIMESTAMP,ContextTokens,GeneratedTokens\n1969-12-31 23:59:59.0,1,1\n",
	} {
		if reqs, err := traces.ReadAzure(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: err %v (requests %+v), want ErrFormat", name, err, reqs)
		}
	}
	for name, in := range map[string]string{
		"past 2^63 ns":      `{"timestamp": 9223372036855, "input_length": 2, "output_length": 1}`,
		"max int64":         `{"timestamp": 9223372036854775807, "input_length": 2, "output_length": 1}`,
		"after a good line": "{\"timestamp\": 1, \"input_length\": 2, \"output_length\": 1}\n{\"timestamp\": 10000000000000, \"input_length\": 2, \"output_length\": 1}",
	} {
		if reqs, err := traces.ReadMooncake(strings.NewReader(in)); !errors.Is(err, traces.ErrFormat) {
			t.Errorf("%s: err %v (requests %+v), want ErrFormat", name, err, reqs)
		}
	}
	// The largest representable ones are read exactly.
	reqs, err := traces.ReadMooncake(strings.NewReader(`{"timestamp": 9223372036854, "input_length": 2, "output_length": 1}`))
	if err != nil || reqs[0].Arrival != 9223372036854*time.Millisecond {
		t.Errorf("largest Mooncake timestamp: %v %+v", err, reqs)
	}
	reqs, err = traces.ReadAzure(strings.NewReader("TIMESTAMP,ContextTokens,GeneratedTokens\n1970-01-01 00:00:00.0,1,1\n2261-12-31 23:59:59.0,1,1\n"))
	if err != nil || reqs[1].Arrival <= 0 {
		t.Errorf("Azure 1970 to 2261: %v %+v", err, reqs)
	}
}
