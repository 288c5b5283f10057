package traces_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pagedkv/pagedkv/bench/traces"
)

// Tests that kill the bench/traces mutants of the eighty-sixth mutation
// round (docs/testing.md, "Mutation testing, eighty-sixth round").

// TestAudit133ReadFileNamesAnUnknownExtension: a path whose extension
// names no format, read with format "", is refused by its extension, and
// the error names the path; it is not an unknown format "".
// TestReadFile's t.txt only asked for an ErrFormat, which the
// unknown-format refusal gives as well.
func TestAudit133ReadFileNamesAnUnknownExtension(t *testing.T) {
	p := filepath.Join(t.TempDir(), "trace.parquet")
	reqs, err := traces.ReadFile(p, "")
	if !errors.Is(err, traces.ErrFormat) || !strings.Contains(err.Error(), p) || reqs != nil {
		t.Errorf("ReadFile(%q, \"\"): %+v, %v; want ErrFormat naming the path", p, reqs, err)
	}
}
