//go:build !linux

package paged_test

// hugePages does nothing here (see the Linux version).
func hugePages() int { return 0 }
