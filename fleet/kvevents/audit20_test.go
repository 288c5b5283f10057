package kvevents

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// An onboard (a BlockMoved with tokens) is written as a BlockStored too,
// so an Encoder with Specs must check its group as it checks a
// BlockStored's: a group outside Specs panicked (index out of range),
// and a Shared group wrote a frame whose header counted a
// kv_cache_spec_kind field it did not write, so a decoder misread it.
func TestEncoderSpecsCheckOnboards(t *testing.T) {
	specs := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.Shared, Target: 0}}
	onboard := func(group int) paged.Event {
		return paged.Event{Kind: paged.BlockMoved, Hashes: []paged.Hash{{1}}, Tokens: make([]int32, 4), BlockSize: 4,
			Group: group, From: paged.Host, Medium: paged.Device}
	}
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Specs: specs})
		require.NoError(t, err)
		frame, err := e.AppendBatch(nil, 1, []paged.Event{onboard(0)})
		require.NoError(t, err)
		var b Batch
		require.NoError(t, b.Decode(frame))
		require.Len(t, b.Meta, 2)
		assert.Equal(t, SpecFullAttention, b.Meta[1].Spec, "layout %d: the onboard's store carries its spec", layout)
		for _, g := range []int{1, 2} {
			var out []byte
			assert.NotPanics(t, func() { out, err = e.AppendBatch(nil, 1, []paged.Event{onboard(g)}) }, "layout %d group %d", layout, g)
			assert.ErrorIs(t, err, ErrInvalid, "layout %d: an onboard of group %d", layout, g)
			assert.Empty(t, out, "nothing written")
		}
	}
}

// A kind without a window (full attention, MLA, mamba) sent with a
// kv_cache_spec_sliding_window contradicts itself: LayoutGroup and the
// learner took it as full attention (or a state group) and ignored the
// window.
func TestLayoutLearnerRefusesAWindowOnAKindWithout(t *testing.T) {
	for _, k := range []SpecKind{SpecFullAttention, SpecMLAAttention, SpecSinkFullAttention, SpecMamba} {
		_, ok := Meta{Spec: k, SlidingWindow: 64}.LayoutGroup()
		assert.False(t, ok, "%v with a window of 64", k)
		var l LayoutLearner
		l.Learn(&Batch{
			Events: []paged.Event{{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, BlockSize: 16, Tokens: make([]int32, 16)}},
			Meta:   []Meta{{HasGroup: true, Spec: k, SlidingWindow: 64}},
		})
		_, err := l.Layout(1)
		assert.ErrorIs(t, err, ErrInvalid, "%v with a window of 64", k)
	}
}

// FuzzLayoutLearner learns from BlockStored events with arbitrary
// groups, kinds, windows and block sizes and checks what it answers: a
// layout only when every event it learned of a group asked for agrees
// with it (kind, window, block size) and none describes a group beyond,
// ErrInvalid otherwise; asking again answers the same.
func FuzzLayoutLearner(f *testing.F) {
	f.Add([]byte{1, 0, 1, 0, 0})
	f.Add([]byte{3, 0, 1, 0, 0, 1, 4, 2, 0, 2, 6, 0, 0})
	f.Add([]byte{2, 0, 1, 0, 0, 1, 4, 0, 1, 0, 2, 1, 0})
	f.Add([]byte{2, 0, 1, 1, 0, 1, 7, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		groups := int(data[0] % 5)
		data = data[1:]
		windows := [...]int{0, 4, 64}
		sizes := [...]int{16, 32}
		var l LayoutLearner
		var b, all Batch
		for len(data) >= 4 {
			ev := paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{{1}}, BlockSize: sizes[data[3]%2]}
			m := Meta{Group: int(data[0] % 4), HasGroup: data[0]&0x80 == 0, Spec: SpecKind(data[1] % 11), SlidingWindow: windows[data[2]%3]}
			if data[3]&0x80 != 0 {
				ev.Kind = paged.BlockRemoved
			}
			b.Events, b.Meta = append(b.Events, ev), append(b.Meta, m)
			all.Events, all.Meta = append(all.Events, ev), append(all.Meta, m)
			data = data[4:]
			if len(b.Events) == 3 {
				l.Learn(&b)
				b.Events, b.Meta = b.Events[:0], b.Meta[:0]
			}
		}
		l.Learn(&b)
		got, err := l.Layout(groups)
		again, err2 := l.Layout(groups)
		require.Equal(t, err == nil, err2 == nil)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			return
		}
		require.Equal(t, got.String(), again.String())
		require.NoError(t, got.Validate())
		require.Len(t, got.Groups, groups)
		// Every event the learner reads agrees with the layout.
		for i, ev := range all.Events {
			m := all.Meta[i]
			if ev.Kind != paged.BlockStored || !m.HasGroup || m.Spec == SpecNone {
				continue
			}
			require.Less(t, m.Group, groups, "an event of group %d, beyond the layout", m.Group)
			g, ok := m.LayoutGroup()
			require.True(t, ok, "event %d (%+v) cannot be scored", i, m)
			require.Equal(t, g, got.Groups[m.Group], "event %d (%+v)", i, m)
			require.Equal(t, ev.BlockSize, got.BlockSize, "event %d", i)
		}
	})
}

// With Specs, encoding, decoding and learning a batch allocate nothing
// in steady state: the spec fields are written from constants, read
// without a copy of the kind's text, and the learner's groups are grown
// once.
func TestSpecsAllocateNothing(t *testing.T) {
	specs := []paged.Group{{Kind: paged.FullAttention}, {Kind: paged.SlidingWindow, Window: 64}, {Kind: paged.State}}
	var events []paged.Event
	for g := range specs {
		events = append(events, paged.Event{Kind: paged.BlockStored, Hashes: []paged.Hash{{byte(g + 1)}}, Tokens: make([]int32, 4), BlockSize: 4, Group: g},
			paged.Event{Kind: paged.BlockMoved, Hashes: []paged.Hash{{byte(g + 1)}}, Tokens: make([]int32, 4), BlockSize: 4, Group: g, From: paged.Host})
	}
	for _, layout := range []Layout{ArrayLayout, MapLayout} {
		e, err := NewEncoder(EncoderConfig{Layout: layout, Specs: specs})
		require.NoError(t, err)
		buf, err := e.AppendBatch(nil, 1, events)
		require.NoError(t, err)
		var dec Batch
		var l LayoutLearner
		require.NoError(t, dec.Decode(buf))
		l.Learn(&dec)
		allocs := testing.AllocsPerRun(100, func() {
			buf, _ = e.AppendBatch(buf[:0], 1, events)
			_ = dec.Decode(buf)
			l.Learn(&dec)
		})
		assert.Zero(t, allocs, "layout %d", layout)
		got, err := l.Layout(len(specs))
		require.NoError(t, err)
		assert.Equal(t, "b4 full window:64 state", got.String())
	}
}
