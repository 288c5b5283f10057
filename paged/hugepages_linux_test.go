//go:build linux

package paged_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Linux madvise advice values the syscall package does not name.
const (
	madvHugepage = 14
	madvCollapse = 25 // Linux 6.1 and later
)

// hugePages, when PAGEDKV_BENCH_HUGEPAGES is set, asks the kernel to back
// every anonymous read-write mapping of the process (the Go heap among
// them) with 2 MiB pages and to collapse what is already there, and
// returns how many 2 MiB pages it collapsed. A measuring aid, not a
// library feature: Go's heap uses 4 KiB pages unless the system's
// transparent huge pages are set to "always", so a pool's metadata
// (tens of MB at 4,096 sequences) costs a TLB miss at almost every
// random access; this puts a figure on that share of the decode step
// (docs/performance.md, "Decode at scale (session 6)").
func hugePages() int {
	if os.Getenv("PAGEDKV_BENCH_HUGEPAGES") == "" {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	const huge = 2 << 20
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode, and no path: anonymous.
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 || !strings.HasPrefix(fs[1], "rw") {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		a, b = (a+huge-1)&^(huge-1), b&^(huge-1)
		if b <= a {
			continue
		}
		syscall.Syscall(syscall.SYS_MADVISE, uintptr(a), uintptr(b-a), madvHugepage)
		for p := a; p < b; p += huge {
			_, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(p), huge, madvCollapse)
			if e == 0 {
				n++
			}
		}
	}
	return n
}
