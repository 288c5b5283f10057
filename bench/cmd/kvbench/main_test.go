package main

import (
	"os"
	"testing"

	"github.com/pagedkv/pagedkv/internal/redistest"
)

// TestMain says when the Redis replays were skipped and how to run them.
func TestMain(m *testing.M) {
	os.Exit(redistest.Main(m, "bench/cmd/kvbench", ".ci/with-redis go test ./bench/cmd/kvbench/ -run Fleet"))
}
