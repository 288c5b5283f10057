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
