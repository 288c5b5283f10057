package paged

import (
	"runtime"
	"testing"
)

// TestLongSequenceBuffersNotKept: a slot reuses its sequence's buffers,
// but a slot that once held a long sequence must not keep its long
// buffers for the short ones after it. Otherwise, over a long run in which
// each of k slots hosts one long sequence at a different time (never more
// than one at once), the manager ends up holding k long sequences' worth of
// tokens, hashes and tables: memory that grows with the run, not with the
// pool or what is live.
func TestLongSequenceBuffersNotKept(t *testing.T) {
	const bs, long, k = 16, 1 << 17, 16
	m, err := New(Config{BlockSize: bs, NumBlocks: long/bs + 4*k})
	if err != nil {
		t.Fatal(err)
	}
	longPrompt := memoSeq(1, long)
	short := make([]SeqID, k)
	for i := range short {
		if short[i], _, err = m.Create(memoSeq(10*i, 8), nil); err != nil {
			t.Fatal(err)
		}
	}
	before := heapInuse()
	for i := range short {
		if err := m.Free(short[i]); err != nil {
			t.Fatal(err)
		}
		id, _, err := m.Create(longPrompt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
		if short[i], _, err = m.Create(memoSeq(10*i, 8), nil); err != nil {
			t.Fatal(err)
		}
	}
	grown := int64(heapInuse()) - int64(before)
	// One long sequence's buffers: 4 bytes a token, a 32-byte hash and a
	// 4-byte table entry a block.
	one := int64(long * (4 + (32+4)/bs))
	t.Logf("heap grew %d KiB; one long sequence's buffers are %d KiB", grown>>10, one>>10)
	if grown > 3*one {
		t.Fatalf("heap grew %d bytes, %.1f long sequences' buffers, after %d long sequences one at a time", grown, float64(grown)/float64(one), k)
	}
	runtime.KeepAlive(longPrompt)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestLongSequenceBuffersShrinkAfterBurst: after a burst of long
// sequences is freed, the free slots keep long buffers for at most twice
// MaxModelLen tokens, not every long sequence's.
func TestLongSequenceBuffersShrinkAfterBurst(t *testing.T) {
	const bs, long, k = 16, 1 << 17, 8
	m, err := New(Config{BlockSize: bs, NumBlocks: k*long/bs + 64, MaxModelLen: long})
	if err != nil {
		t.Fatal(err)
	}
	prompt := memoSeq(1, long)
	ids := make([]SeqID, k)
	before := heapInuse()
	for i := range ids {
		prompt[0] = int32(i) // no hits: each holds its own blocks
		if ids[i], _, err = m.Create(prompt, nil); err != nil {
			t.Fatal(err)
		}
	}
	live := heapInuse()
	for _, id := range ids {
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	grown := int64(heapInuse()) - int64(before)
	one := int64(long * (4 + (32+4)/bs))
	t.Logf("heap grew %d KiB after %d long sequences were freed (%d KiB while they lived); one's buffers are %d KiB", grown>>10, k, (int64(live)-int64(before))>>10, one>>10)
	if grown > 3*one {
		t.Fatalf("heap grew %.1f long sequences' buffers after %d were freed", float64(grown)/float64(one), k)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestLongHintReusesBuffers: sequences that all ask for long buffers
// (SeqOptions.MaxTokens past keepTokens) still reuse them: a steady stream
// of Add and Free allocates nothing.
func TestLongHintReusesBuffers(t *testing.T) {
	const bs, long = 16, 1 << 17
	m, err := New(Config{BlockSize: bs, NumBlocks: 64, MaxModelLen: long})
	if err != nil {
		t.Fatal(err)
	}
	prompt := memoSeq(1, 40)
	opts := &SeqOptions{MaxTokens: long}
	cycle := func() {
		id, err := m.Add(prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Free(id); err != nil {
			t.Fatal(err)
		}
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Fatalf("Add and Free with a %d-token hint allocate %v times a cycle", long, n)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
