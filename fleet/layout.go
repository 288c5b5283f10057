package fleet

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/paged"
)

// Layout describes a server's KV cache groups, so the index can score
// the prefix the server can actually hit (see the package documentation,
// "Hybrid models"). A paged server's is LayoutOf(its paged.Config); a
// vLLM pod's follows its model's kv_cache_groups in vLLM's group order
// (the group_idx of its events), given by the operator.
type Layout struct {
	// BlockSize is the number of tokens per block, the same in every
	// group (as vLLM unifies page sizes and paged.Config has one).
	BlockSize int
	// Groups are the groups by index (paged.Event.Group, vLLM's
	// group_idx): Kind, and Window (SlidingWindow) or Chunk
	// (ChunkedLocal) in tokens, or Target (Shared). Pages is ignored: a
	// state group's checkpoints are reported whole (docs/hybrid.md).
	// At most 255 groups.
	Groups []paged.Group
}

// maxLayoutGroups bounds Layout.Groups, as paged.Config.Groups.
const maxLayoutGroups = 255

// MaxLayoutBlockSize and MaxLayoutSpan bound a layout's block size and
// its windows and chunks, in tokens, so that scoring's token arithmetic
// never overflows, with a 32-bit int too (their sum fits one).
const (
	MaxLayoutBlockSize = 1 << 20
	MaxLayoutSpan      = 1 << 30
)

// LayoutOf returns the layout of a paged.Manager made with cfg: one
// full-attention group when cfg.Groups is empty.
func LayoutOf(cfg paged.Config) Layout {
	l := Layout{BlockSize: cfg.BlockSize}
	if l.BlockSize == 0 {
		l.BlockSize = 16 // paged's default
	}
	if len(cfg.Groups) == 0 {
		l.Groups = []paged.Group{{Kind: paged.FullAttention}}
		return l
	}
	l.Groups = make([]paged.Group, len(cfg.Groups))
	for i, g := range cfg.Groups {
		l.Groups[i] = paged.Group{Kind: g.Kind, Window: g.Window, Chunk: g.Chunk, Target: g.Target}
	}
	return l
}

// Validate reports a layout the index cannot score with, wrapping
// ErrInvalid: a block size outside [1, MaxLayoutBlockSize], no groups or
// more than 255, an unknown kind, a window or chunk outside [1,
// MaxLayoutSpan], a Shared group whose target is out of range or holds
// no blocks itself (State, Shared).
func (l Layout) Validate() error {
	if l.BlockSize < 1 || l.BlockSize > MaxLayoutBlockSize {
		return fmt.Errorf("%w: layout block size %d, must be in [1, %d]", ErrInvalid, l.BlockSize, MaxLayoutBlockSize)
	}
	if len(l.Groups) == 0 || len(l.Groups) > maxLayoutGroups {
		return fmt.Errorf("%w: layout has %d groups, must have 1 to %d", ErrInvalid, len(l.Groups), maxLayoutGroups)
	}
	for i, g := range l.Groups {
		switch g.Kind {
		case paged.FullAttention, paged.State:
		case paged.SlidingWindow:
			if g.Window < 1 || g.Window > MaxLayoutSpan {
				return fmt.Errorf("%w: layout group %d: window %d, must be in [1, %d]", ErrInvalid, i, g.Window, MaxLayoutSpan)
			}
		case paged.ChunkedLocal:
			if g.Chunk < 1 || g.Chunk > MaxLayoutSpan {
				return fmt.Errorf("%w: layout group %d: chunk %d, must be in [1, %d]", ErrInvalid, i, g.Chunk, MaxLayoutSpan)
			}
		case paged.Shared:
			if g.Target < 0 || g.Target >= len(l.Groups) {
				return fmt.Errorf("%w: layout group %d: shared target %d out of range", ErrInvalid, i, g.Target)
			}
			if k := l.Groups[g.Target].Kind; k == paged.State || k == paged.Shared {
				return fmt.Errorf("%w: layout group %d: shared target %d is a %v group", ErrInvalid, i, g.Target, k)
			}
		default:
			return fmt.Errorf("%w: layout group %d: kind %v", ErrInvalid, i, g.Kind)
		}
	}
	return nil
}

// hasState reports whether the layout has a State group.
func (l Layout) hasState() bool {
	for _, g := range l.Groups {
		if g.Kind == paged.State {
			return true
		}
	}
	return false
}

// String encodes the layout as backends store it: "b<block size>" then
// one field per group, "full", "window:<W>", "chunked:<C>", "state",
// "shared:<target>", space separated. ParseLayout reads it back.
func (l Layout) String() string {
	var b strings.Builder
	b.WriteString("b")
	b.WriteString(strconv.Itoa(l.BlockSize))
	for _, g := range l.Groups {
		b.WriteByte(' ')
		b.WriteString(g.Kind.String())
		switch g.Kind {
		case paged.SlidingWindow:
			b.WriteString(":" + strconv.Itoa(g.Window))
		case paged.ChunkedLocal:
			b.WriteString(":" + strconv.Itoa(g.Chunk))
		case paged.Shared:
			b.WriteString(":" + strconv.Itoa(g.Target))
		}
	}
	return b.String()
}

// ParseLayout decodes Layout.String's encoding and validates the layout;
// bad text is ErrInvalid.
func ParseLayout(s string) (Layout, error) {
	f := strings.Fields(s)
	if len(f) < 2 || !strings.HasPrefix(f[0], "b") {
		return Layout{}, fmt.Errorf("%w: layout %q", ErrInvalid, s)
	}
	bs, err := strconv.Atoi(f[0][1:])
	if err != nil {
		return Layout{}, fmt.Errorf("%w: layout %q: block size", ErrInvalid, s)
	}
	l := Layout{BlockSize: bs, Groups: make([]paged.Group, 0, len(f)-1)}
	for _, field := range f[1:] {
		name, arg, hasArg := strings.Cut(field, ":")
		n := 0
		if hasArg {
			if n, err = strconv.Atoi(arg); err != nil {
				return Layout{}, fmt.Errorf("%w: layout %q: group %q", ErrInvalid, s, field)
			}
		}
		var g paged.Group
		switch {
		case name == "full" && !hasArg:
			g.Kind = paged.FullAttention
		case name == "state" && !hasArg:
			g.Kind = paged.State
		case name == "window" && hasArg:
			g = paged.Group{Kind: paged.SlidingWindow, Window: n}
		case name == "chunked" && hasArg:
			g = paged.Group{Kind: paged.ChunkedLocal, Chunk: n}
		case name == "shared" && hasArg:
			g = paged.Group{Kind: paged.Shared, Target: n}
		default:
			return Layout{}, fmt.Errorf("%w: layout %q: group %q", ErrInvalid, s, field)
		}
		l.Groups = append(l.Groups, g)
	}
	if err := l.Validate(); err != nil {
		return Layout{}, err
	}
	return l, nil
}

// GroupKey is the key the index keeps block h of KV cache group g under:
// h itself for group 0 (so a model of one group is keyed as before), h
// with g mixed into its second word for the others, so the same tokens
// cached for two groups are two entries, as paged and vLLM key them.
func GroupKey(h *paged.Hash, g int) paged.Hash {
	k := *h
	if g != 0 {
		x := binary.LittleEndian.Uint64(k[8:16]) ^ uint64(g)*0x94d049bb133111eb
		binary.LittleEndian.PutUint64(k[8:16], x)
	}
	return k
}

// layoutClass is one class of a layout's groups: one kind and size, all
// full-attention groups one class, all state groups one (a checkpoint is
// taken and hit in every state group at once), as paged's lookup forms
// them.
type layoutClass struct {
	kind   paged.GroupKind
	size   int   // window or chunk in tokens
	need   int   // a window's blocks before a hit point (windowNeed)
	groups []int // the groups, indexes into Layout.Groups
}

// scorer is a server's layout prepared for scoring.
type scorer struct {
	text string
	// unreadable: text is a layout this version cannot read (a newer
	// router's, a hand edit): the server is scored nothing, partial, and
	// its events are applied unchecked (unreadableLayout).
	unreadable bool
	bs         int
	ngroups    int
	classes    []layoutClass
	// uses are the groups whose entries a score reads (not Shared), in
	// increasing order.
	uses []int
	// shared marks the groups that hold nothing (Shared).
	shared []bool
	// affinity is the group whose run of leading blocks is
	// Score.Affinity: the first full-attention group, else group 0.
	affinity int
	// from is device's scratch, a block per class.
	from []int
}

// unreadableLayout stands for a recorded layout text that does not parse.
func unreadableLayout(text string) *scorer { return &scorer{text: text, unreadable: true} }

// newScorer prepares layout l, which must be valid.
func newScorer(l Layout) *scorer {
	s := &scorer{text: l.String(), bs: l.BlockSize, ngroups: len(l.Groups), shared: make([]bool, len(l.Groups))}
	if i := slices.IndexFunc(l.Groups, func(g paged.Group) bool { return g.Kind == paged.FullAttention }); i > 0 {
		s.affinity = i
	}
	find := func(kind paged.GroupKind, size int) *layoutClass {
		for i := range s.classes {
			if c := &s.classes[i]; c.kind == kind && c.size == size {
				return c
			}
		}
		s.classes = append(s.classes, layoutClass{kind: kind, size: size})
		return &s.classes[len(s.classes)-1]
	}
	for i, g := range l.Groups {
		var c *layoutClass
		switch g.Kind {
		case paged.FullAttention, paged.State:
			c = find(g.Kind, 0)
		case paged.SlidingWindow:
			c = find(g.Kind, g.Window)
		case paged.ChunkedLocal:
			c = find(g.Kind, g.Chunk)
		default:
			s.shared[i] = true
			continue
		}
		c.groups = append(c.groups, i)
		s.uses = append(s.uses, i)
	}
	for i := range s.classes {
		if c := &s.classes[i]; c.kind == paged.SlidingWindow {
			c.need = windowNeed(c.size, s.bs)
		}
	}
	s.from = make([]int, len(s.classes))
	return s
}

// view is one server's part of a lookup's holder sets: row 0 is the
// request's hashes (group 0), row rowOf[g] group g's keys (GroupKey), n
// keys a row, 2*w words a key (device, then host).
type view struct {
	masks []uint64
	rowOf []int
	n, w  int
	word  int
	bit   uint64
}

// held reports whether the server holds block i of group g, on either
// tier, or on the device when dev is set.
func (v *view) held(g, i int, dev bool) bool {
	row := 0
	if g != 0 {
		row = v.rowOf[g]
	}
	base := (row*v.n + i) * 2 * v.w
	m := v.masks[base+v.word]
	if !dev {
		m |= v.masks[base+v.w+v.word]
	}
	return m&v.bit != 0
}

// hit returns the longest prefix of n blocks the server can hit, the
// fixed point of its classes' rules as paged's lookup (cutHit) finds it:
// from n, each class cuts the length to its own longest hit within it,
// until no class cuts further. Each rule answers the longest hit of its
// class at most the limit, so the fixed point is the longest prefix that
// is a hit in every group.
//
// run0 is group 0's run of leading blocks among the n, which the lookup
// has counted already: the full-attention class's hit when group 0 is
// its only group.
func (s *scorer) hit(n, run0 int, held *view) int {
	L := n
	for i, stable := 0, 0; stable < len(s.classes); i = (i + 1) % len(s.classes) {
		c := &s.classes[i]
		h := 0
		if c.kind == paged.FullAttention && len(c.groups) == 1 && c.groups[0] == 0 {
			h = min(run0, L)
		} else {
			h = s.classHit(c, L, held)
		}
		if h < L {
			L, stable = h, 1
		} else {
			stable++
		}
	}
	return L
}

// all reports whether every group of c holds block i.
func all(c *layoutClass, i int, held *view, dev bool) bool {
	for _, g := range c.groups {
		if !held.held(g, i, dev) {
			return false
		}
	}
	return true
}

// windowNeed is the number of blocks before a hit point a window of w
// tokens reads, at least the last one (paged's right-to-left scan ends
// with a cached block).
func windowNeed(w, bs int) int { return max(1, (w-1+bs-1)/bs) }

// chunkStart is the first block of the chunk of position L*bs for
// chunks of c tokens, in 64 bits: L*bs may not fit a 32-bit int.
func chunkStart(L, c, bs int) int {
	return int(int64(L) * int64(bs) / int64(c) * int64(c) / int64(bs))
}

// classHit is class c's longest hit at most limit blocks.
func (s *scorer) classHit(c *layoutClass, limit int, held *view) int {
	switch c.kind {
	case paged.FullAttention:
		// Every block of [0, L).
		i := 0
		for i < limit && all(c, i, held, false) {
			i++
		}
		return i
	case paged.SlidingWindow:
		// The right-to-left scan: the end of the last run of need cached
		// blocks, else the run from block 0.
		need, run := c.need, 0
		for i := limit - 1; i >= 0; i-- {
			if !all(c, i, held, false) {
				run = 0
				continue
			}
			if run++; run >= need {
				return i + run
			}
		}
		return run
	case paged.ChunkedLocal:
		// The blocks of L's chunk, from its first: a run that stops short
		// is checked as a limit in turn.
		for L := limit; ; {
			end := chunkStart(L, c.size, s.bs)
			for end < L && all(c, end, held, false) {
				end++
			}
			if end == L {
				return L
			}
			L = end
		}
	case paged.State:
		// A checkpoint at exactly L: the state groups hold the hash of
		// block L-1.
		for L := limit; L > 0; L-- {
			if all(c, L-1, held, false) {
				return L
			}
		}
		return 0
	}
	return limit
}

// device counts the blocks of a hit of L blocks that need no copy from
// the host: those every group that reads them at L holds on the device
// (full attention: [0, L); a window: its last need blocks; a chunk: L's
// chunk's blocks; a state checkpoint: none of its own).
func (s *scorer) device(L int, held *view) int {
	for ci := range s.classes {
		c := &s.classes[ci]
		from := 0
		switch c.kind {
		case paged.SlidingWindow:
			if L >= c.need {
				from = L - c.need
			}
		case paged.ChunkedLocal:
			from = chunkStart(L, c.size, s.bs)
		case paged.State:
			from = L
		}
		s.from[ci] = from
	}
	n := 0
blocks:
	for i := range L {
		for ci := range s.classes {
			if i >= s.from[ci] && !all(&s.classes[ci], i, held, true) {
				continue blocks
			}
		}
		n++
	}
	return n
}

// check refuses events the layout cannot describe: a group it does not
// have or one that holds nothing (Shared), a block size not its own.
func (s *scorer) check(events []paged.Event) error {
	if s.unreadable {
		return nil // entries are kept per group whatever the layout
	}
	for i := range events {
		ev := &events[i]
		if ev.Kind == paged.AllBlocksCleared {
			continue
		}
		if ev.Group >= s.ngroups {
			return fmt.Errorf("%w: event %d names group %d, the server's layout %q has %d", ErrInvalid, ev.Seq, ev.Group, s.text, s.ngroups)
		}
		if s.shared[ev.Group] {
			return fmt.Errorf("%w: event %d names group %d, a shared group of layout %q (it holds no blocks)", ErrInvalid, ev.Seq, ev.Group, s.text)
		}
		if ev.Kind == paged.BlockStored && ev.BlockSize != 0 && ev.BlockSize != s.bs {
			return fmt.Errorf("%w: event %d stores blocks of %d tokens, the server's layout %q has %d", ErrInvalid, ev.Seq, ev.BlockSize, s.text, s.bs)
		}
	}
	return nil
}
