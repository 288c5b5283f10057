package traces_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// Tests that kill the bench/traces mutants of the fifty-eighth mutation
// round (docs/testing.md, "Mutation testing, fifty-eighth round").

// TestAudit104FormatByExtension: Format's whole table, with the
// extension's case ignored and .json beside .jsonl. TestReadFile read
// only a lower-case .csv, so an upper-case extension going unrecognised
// (M2502) and .json not naming Mooncake (M2503) went unseen.
func TestAudit104FormatByExtension(t *testing.T) {
	for path, want := range map[string]string{
		"a.csv":          "azure",
		"dir/A.CSV":      "azure",
		"t.Csv":          "azure",
		"m.jsonl":        "mooncake",
		"m.JSONL":        "mooncake",
		"m.json":         "mooncake",
		"M.Json":         "mooncake",
		"x.txt":          "",
		"csv":            "",
		"d.csv/trace":    "",
		"trace.csv.gz":   "",
		"trace.jsonl.gz": "",
	} {
		if got := traces.Format(path); got != want {
			t.Errorf("Format(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestAudit104ReadFileUnknownFormatRefused gives ReadFile a format it
// does not know for a file that is a valid Mooncake trace: ErrFormat, no
// requests. TestReadFile's unknown format named an Azure CSV, which the
// Mooncake reader refuses as well, so a ReadFile that skipped the format
// check and read the file as Mooncake (M2506) passed it. The .JSON file
// read with format "" is the same trace, chosen by its upper-case
// extension.
func TestAudit104ReadFileUnknownFormatRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.JSON")
	if err := os.WriteFile(p, []byte(`{"timestamp": 0, "input_length": 7, "output_length": 2, "hash_ids": [1]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reqs, err := traces.ReadFile(p, "")
	if err != nil || len(reqs) != 1 || reqs[0].InputTokens != 7 {
		t.Fatalf("ReadFile(%q, \"\"): %+v, %v", p, reqs, err)
	}
	for _, format := range []string{"parquet", "Mooncake", "json", "jsonl"} {
		if reqs, err := traces.ReadFile(p, format); !errors.Is(err, traces.ErrFormat) || reqs != nil {
			t.Errorf("ReadFile(%q, %q): %+v, %v; want ErrFormat", p, format, reqs, err)
		}
	}
}
