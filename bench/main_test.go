package bench

import (
	"os"
	"testing"

	"github.com/pagedkv/pagedkv/internal/redistest"
)

// TestMain says when the Redis tests were skipped and how to run them.
func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m, "bench", ".ci/with-redis go test ./bench/ -run Redis"))
}
