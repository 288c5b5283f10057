package fleet

import (
	"os"
	"testing"

	"github.com/pagedkv/pagedkv/internal/redistest"
)

// TestMain says when the Redis tests were skipped and how to run them.
func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m, "fleet", ".ci/with-redis go test ./fleet/..."))
}
