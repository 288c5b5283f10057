package allocator_test

import (
	"errors"
	"testing"

	"github.com/pagedkv/pagedkv/allocator"
)

// TestAudit10ZeroPool: the zero Pool is documented to behave as a pool of
// no blocks.
func TestAudit10ZeroPool(t *testing.T) {
	var p allocator.Pool
	if id, err := p.Alloc(); id != allocator.NoBlock || !errors.Is(err, allocator.ErrNoSpace) {
		t.Errorf("Alloc = %d, %v", id, err)
	}
	if got, err := p.AppendAlloc(nil, 1); len(got) != 0 || !errors.Is(err, allocator.ErrNoSpace) {
		t.Errorf("AppendAlloc(1) = %v, %v", got, err)
	}
	if got, err := p.AppendAlloc(nil, 0); len(got) != 0 || err != nil {
		t.Errorf("AppendAlloc(0) = %v, %v", got, err)
	}
	if p.CountCached(0, 0) != 0 || p.Valid(0) || p.TryRef(0) || p.TryClaim(0) {
		t.Error("an ID is in range of the zero pool")
	}
	if last, ok := p.TryReleaseToCache(0); last || ok {
		t.Error("TryReleaseToCache(0) on the zero pool")
	}
	for name, f := range map[string]func(){
		"Ref": func() { p.Ref(0) }, "Release": func() { p.Release(0) }, "Claim": func() { p.Claim(0) },
		"Evict": func() { p.Evict(0) }, "RefCount": func() { p.RefCount(0) }, "CountCached(0, 1)": func() { p.CountCached(0, 1) },
	} {
		if !panics(f) {
			t.Errorf("%s(0) on the zero pool did not panic", name)
		}
	}
	if err := p.Check(); err != nil {
		t.Error(err)
	}
	if s := p.Stats(); s != (allocator.Stats{}) {
		t.Errorf("Stats = %+v", s)
	}
}
