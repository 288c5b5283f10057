package paged_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/pagedkv/pagedkv/paged"
)

// TestAudit13StrideBoundCountsPartialBlock builds batches for a sequence
// at MaxModelLen whose last block is partly filled: 65 tokens of 4 take 17
// blocks, so the automatic stride grows to 32, and the next BuildBatch
// must accept the width it chose itself (a bound of 65/4 rounded down, 16,
// refused it), as must a caller fixing it at 32. 64 is too wide.
// (Mutation M17.)
func TestAudit13StrideBoundCountsPartialBlock(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 40, MaxModelLen: 65})
	if err != nil {
		t.Fatal(err)
	}
	prompt := make([]int32, 65)
	for i := range prompt {
		prompt[i] = int32(i)
	}
	id, _, err := m.Create(prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b paged.Batch
	sched := []paged.Scheduled{{ID: id, NewTokens: 1}}
	for i := range 2 {
		if err := m.BuildBatch(&b, sched); err != nil {
			t.Fatalf("BuildBatch %d: %v", i, err)
		}
		if b.Stride != 32 {
			t.Fatalf("BuildBatch %d: stride %d for 17 blocks, want 32", i, b.Stride)
		}
	}
	fixed := paged.Batch{Stride: 32}
	if err := m.BuildBatch(&fixed, sched); err != nil {
		t.Fatalf("BuildBatch with Stride 32: %v", err)
	}
	wide := paged.Batch{Stride: 64}
	if err := m.BuildBatch(&wide, sched); !errors.Is(err, paged.ErrInvalid) {
		t.Fatalf("BuildBatch with Stride 64 = %v, want ErrInvalid", err)
	}
}

// TestAudit13WatermarkRoundsUp pins the headroom to the fraction rounded
// up: Config.Watermark is the fraction of usable blocks admission must
// leave available, and of 10 usable blocks, 15% leaves 2 (1 would leave
// 10%). vLLM v0 truncates instead (int(watermark * blocks)); the library's
// reading is the one its doc states. (Mutation M16: TestWatermark's 20% of
// 10 is a whole number of blocks either way.)
func TestAudit13WatermarkRoundsUp(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 1, NumBlocks: 11, Watermark: 0.15, DisablePrefixCaching: true})
	if err != nil {
		t.Fatal(err)
	}
	if a := m.CanAdmitTokens(8); a != paged.AdmitOK {
		t.Fatalf("CanAdmitTokens(8) = %v, want ok", a)
	}
	if a := m.CanAdmitTokens(9); a != paged.AdmitNever {
		t.Fatalf("CanAdmitTokens(9) = %v, want never: 2 of 10 blocks are headroom", a)
	}
	if _, _, err := m.Create(make([]int32, 9), nil); !errors.Is(err, paged.ErrNever) {
		t.Fatalf("Create of 9 tokens = %v, want ErrNever", err)
	}
}

// TestAudit13CanAdmitTokensAgreesWithCreate compares the dry run with the
// admission it predicts, on a fresh pool, for every prompt length up to
// one past the longest a sequence may be: a prompt that fills the pool
// exactly is admitted, so CanAdmitTokens must say ok. (Mutation M34 said
// never for it.)
func TestAudit13CanAdmitTokensAgreesWithCreate(t *testing.T) {
	for _, cfg := range []paged.Config{
		{BlockSize: 4, NumBlocks: 5},
		{BlockSize: 4, NumBlocks: 9, MaxModelLen: 21},
		{BlockSize: 3, NumBlocks: 6, Watermark: 0.2},
	} {
		limit := cfg.MaxModelLen
		if limit == 0 {
			limit = (cfg.NumBlocks - 1) * cfg.BlockSize
		}
		for n := 1; n <= limit+1; n++ {
			m, err := paged.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			a := m.CanAdmitTokens(n)
			_, _, err = m.Create(make([]int32, n), nil)
			if (a == paged.AdmitOK) != (err == nil) || (a == paged.AdmitNever) != errors.Is(err, paged.ErrNever) {
				t.Fatalf("%+v, %d tokens: CanAdmitTokens = %v, Create = %v", cfg, n, a, err)
			}
		}
	}
}

// TestAudit13SplitPlanEndsUnitsAtCeiling pins where Build ends each unit's
// stretch when the blocks do not divide evenly: at ceil((u+1)*total/units),
// as SplitPlan's doc and FlashMLA's scheduler say; 10 blocks on 4 units end
// at 3, 5, 8 and 10. Rounding down (2, 5, 7, 10) balances as well (the
// busiest unit carries 3 either way), so
// only the places tell. (Mutation M93; the other split tests use even
// shares or check balance alone.)
func TestAudit13SplitPlanEndsUnitsAtCeiling(t *testing.T) {
	var p paged.SplitPlan
	if err := p.Build([]int32{10}, 4, 1); err != nil {
		t.Fatal(err)
	}
	want := []paged.SplitItem{{Seq: 0, First: 0, End: 3, Unit: 0}, {First: 3, End: 5, Unit: 1}, {First: 5, End: 8, Unit: 2}, {First: 8, End: 10, Unit: 3}}
	if !slices.Equal(p.Items, want) || p.MaxUnitBlocks != 3 {
		t.Fatalf("items %+v (busiest unit %d), want %+v (3)", p.Items, p.MaxUnitBlocks, want)
	}
}
