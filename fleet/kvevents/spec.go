package kvevents

import (
	"fmt"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// SpecKind is a KV cache group's spec kind as newer vLLM versions name it
// on BlockStored (kv_cache_spec_kind: vllm/v1/kv_cache_interface.py's
// KVCacheSpecKind values, set from the group's KVCacheSpec by
// get_kv_cache_spec_kind).
type SpecKind uint8

// The kinds vLLM sends, and SpecNone for an event without the field.
const (
	SpecNone                  SpecKind = iota
	SpecFullAttention                  // "full_attention"
	SpecMLAAttention                   // "mla_attention"
	SpecSinkFullAttention              // "sink_full_attention"
	SpecSlidingWindow                  // "sliding_window"
	SpecSlidingWindowMLA               // "sliding_window_mla"
	SpecMamba                          // "mamba"
	SpecChunkedLocalAttention          // "chunked_local_attention"
	SpecEncoderOnlyAttention           // "encoder_only_attention"
	SpecCrossAttention                 // "cross_attention"
	SpecUnknown                        // "unknown", or a name this version does not know
)

var specNames = [...]string{"", "full_attention", "mla_attention", "sink_full_attention", "sliding_window", "sliding_window_mla",
	"mamba", "chunked_local_attention", "encoder_only_attention", "cross_attention", "unknown"}

// String returns vLLM's name of the kind ("" for SpecNone).
func (k SpecKind) String() string {
	if int(k) < len(specNames) {
		return specNames[k]
	}
	return fmt.Sprintf("SpecKind(%d)", uint8(k))
}

// specKindOf maps kv_cache_spec_kind's text to a SpecKind, without
// allocating.
func specKindOf(name []byte) SpecKind {
	for k, n := range specNames[1:] {
		if string(name) == n {
			return SpecKind(k + 1)
		}
	}
	return SpecUnknown
}

// LayoutGroup returns the layout group (fleet.Layout, paged.Group) that an
// event's spec describes, and whether the wire says enough to score it:
// full attention of any form (full, MLA, with sinks) is FullAttention; a
// sliding window (MLA or not) with its window in tokens is SlidingWindow
// (vLLM's window needs the same ceil((W-1)/B) blocks before a hit as
// paged's); mamba is State (vLLM's mamba prefix cache hits at L when
// the state after block L-1 is cached, as a paged checkpoint). A chunked
// local group is not: the events do not carry its chunk size; nor are
// encoder-only and cross attention groups (no prefix rule), an unknown
// kind, an event without a spec, nor a kind without a window that
// carries one (a contradiction: vLLM sends a window only for windows).
func (m Meta) LayoutGroup() (paged.Group, bool) {
	switch m.Spec {
	case SpecFullAttention, SpecMLAAttention, SpecSinkFullAttention, SpecMamba:
		if m.SlidingWindow != 0 {
			return paged.Group{}, false
		}
	}
	switch m.Spec {
	case SpecFullAttention, SpecMLAAttention, SpecSinkFullAttention:
		return paged.Group{Kind: paged.FullAttention}, true
	case SpecSlidingWindow, SpecSlidingWindowMLA:
		if m.SlidingWindow > 0 {
			return paged.Group{Kind: paged.SlidingWindow, Window: m.SlidingWindow}, true
		}
	case SpecMamba:
		return paged.Group{Kind: paged.State}, true
	}
	return paged.Group{}, false
}

// LayoutLearner learns a vLLM engine's layout (fleet.Layout, for
// fleet.Index.SetLayout) from the spec fields of its BlockStored events:
// each group's kind and window, and the block size. An engine sends them
// only for groups whose blocks it stores, and the events do not say how
// many groups there are, so Layout takes the number of groups (the
// model's kv_cache_groups) and answers only once each has been seen.
// The zero value is ready to use; it is not safe for concurrent use.
type LayoutLearner struct {
	groups []learnedGroup
	err    error
}

// learnedGroup is what the events said of one group.
type learnedGroup struct {
	seen      bool
	meta      Meta
	blockSize int
}

// maxLearnedGroups bounds the groups a LayoutLearner keeps, as
// fleet.Layout does.
const maxLearnedGroups = 255

// Learn reads the specs of a decoded batch's BlockStored events. Two
// events that describe one group differently (another kind, window or
// block size) make the learner fail: Layout then returns that error. A
// nil batch teaches nothing, nor does an event without a Meta entry (a
// hand-built Batch with fewer Meta than Events): its spec would be there.
func (l *LayoutLearner) Learn(b *Batch) {
	if b == nil {
		return
	}
	for i := range min(len(b.Events), len(b.Meta)) {
		ev, m := &b.Events[i], &b.Meta[i]
		if ev.Kind != paged.BlockStored || !m.HasGroup || m.Spec == SpecNone || l.err != nil {
			continue
		}
		if m.Group >= maxLearnedGroups {
			l.err = fmt.Errorf("%w: group_idx %d, a layout has at most %d groups", ErrInvalid, m.Group, maxLearnedGroups)
			return
		}
		for len(l.groups) <= m.Group {
			l.groups = append(l.groups, learnedGroup{})
		}
		g := &l.groups[m.Group]
		now := learnedGroup{seen: true, meta: Meta{Spec: m.Spec, SlidingWindow: m.SlidingWindow}, blockSize: ev.BlockSize}
		if g.seen && *g != now {
			l.err = fmt.Errorf("%w: group %d described as %v (window %d, blocks of %d tokens), then as %v (window %d, blocks of %d)",
				ErrInvalid, m.Group, g.meta.Spec, g.meta.SlidingWindow, g.blockSize, m.Spec, m.SlidingWindow, ev.BlockSize)
			return
		}
		*g = now
	}
}

// Layout returns the layout of an engine with the given number of KV
// cache groups, once every group has been described: ErrInvalid when a
// group has not been seen yet (ask again later), when its kind cannot be
// scored (Meta.LayoutGroup), when the groups' block sizes differ (a Layout has
// one), or when Learn met contradictory events.
func (l *LayoutLearner) Layout(groups int) (fleet.Layout, error) {
	if l.err != nil {
		return fleet.Layout{}, l.err
	}
	if groups < 1 || groups > maxLearnedGroups {
		return fleet.Layout{}, fmt.Errorf("%w: %d groups, want 1 to %d", ErrInvalid, groups, maxLearnedGroups)
	}
	out := fleet.Layout{Groups: make([]paged.Group, groups)}
	for i := range groups {
		if i >= len(l.groups) || !l.groups[i].seen {
			return fleet.Layout{}, fmt.Errorf("%w: no BlockStored with a spec for group %d yet", ErrInvalid, i)
		}
		g := &l.groups[i]
		pg, ok := g.meta.LayoutGroup()
		if !ok {
			return fleet.Layout{}, fmt.Errorf("%w: group %d is %v (window %d): its events do not say how to score it", ErrInvalid, i, g.meta.Spec, g.meta.SlidingWindow)
		}
		if i > 0 && g.blockSize != out.BlockSize {
			return fleet.Layout{}, fmt.Errorf("%w: group %d has blocks of %d tokens, group 0 of %d; a layout has one block size", ErrInvalid, i, g.blockSize, out.BlockSize)
		}
		out.BlockSize, out.Groups[i] = g.blockSize, pg
	}
	if len(l.groups) > groups {
		for i := groups; i < len(l.groups); i++ {
			if l.groups[i].seen {
				return fleet.Layout{}, fmt.Errorf("%w: the events describe group %d, beyond the %d groups asked for", ErrInvalid, i, groups)
			}
		}
	}
	if err := out.Validate(); err != nil {
		return fleet.Layout{}, fmt.Errorf("%w: learned layout: %v", ErrInvalid, err)
	}
	return out, nil
}
