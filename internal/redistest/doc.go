// Package redistest gives the module's tests the Redis server that
// .ci/with-redis starts, and says so when there is none.
//
// Tests that need Redis call Addr (or Optional, for a test with a Redis
// part). Without PAGEDKV_REDIS_ADDR they are skipped, and the package's
// TestMain, through Main, prints one line after the run naming how many
// were skipped and the command that runs them. go test ./... shows only
// the "ok" line of a package that passes and keeps the rest of its output
// to itself, so the line goes to the go command's own standard error when
// that is a terminal or a pipe (Linux); elsewhere it goes to the test's
// standard error, which go test -v shows.
package redistest
