package redistest

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// EnvAddr is the environment variable holding the test Redis's host:port.
const EnvAddr = "PAGEDKV_REDIS_ADDR"

var skipped atomic.Int32

// Addr returns the test Redis's address, or skips tb when EnvAddr is unset.
func Addr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		skipped.Add(1)
		tb.Skip(EnvAddr + " unset: run under .ci/with-redis for the Redis tests")
	}
	return addr
}

// Optional returns the test Redis's address, or "" when EnvAddr is unset;
// the caller then runs without its Redis part, which Main reports.
func Optional() string {
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		skipped.Add(1)
	}
	return addr
}

// Main runs m and, when tests skipped Redis, prints one line saying how
// many and that run (a shell command) runs them. It returns m.Run's code
// for os.Exit.
func Main(m *testing.M, pkg, run string) int {
	code := m.Run()
	if n := skipped.Load(); n > 0 {
		// After m.Run the test log is closed, so the files read here do
		// not enter go test's cache key.
		w, done := goStderr()
		fmt.Fprintf(w, "%s: %d Redis test(s) skipped (%s unset); run them with: %s\n", pkg, n, EnvAddr, run)
		done()
	}
	return code
}

// goStderr returns the go command's standard error when the test binary
// runs under go test on Linux and that is a terminal, pipe or socket (a
// regular file is left alone: writing past the go command's offset could
// be overwritten by its next message). Otherwise it returns os.Stderr.
func goStderr() (io.Writer, func()) {
	fallback := func() (io.Writer, func()) { return os.Stderr, func() {} }
	if runtime.GOOS != "linux" {
		return fallback()
	}
	ppid := os.Getppid()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", ppid))
	if err != nil || strings.TrimSpace(string(comm)) != "go" {
		return fallback()
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", ppid), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fallback()
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeCharDevice|os.ModeSocket) == 0 {
		f.Close()
		return fallback()
	}
	return f, func() { f.Close() }
}
