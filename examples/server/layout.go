package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pagedkv/pagedkv/fleet"
	"github.com/pagedkv/pagedkv/paged"
)

// ParseLayout reads the -layout flag: the KV cache groups of a hybrid
// model, space separated, group 0 first and full attention: "full",
// "window:<tokens>", "chunked:<tokens>", "state:<pages>" (a state of that
// many blocks per sequence) and "shared:<group>", as package fleet writes
// layouts (fleet.Layout.String), which may lead with the block size,
// "b<tokens>"; it must then be blockSize. An empty text is a model of one
// attention kind (no groups). The manager checks the rest when it is made
// (paged.Config.Groups).
func ParseLayout(text string, blockSize int) ([]paged.Group, error) {
	f := strings.Fields(text)
	if len(f) == 0 {
		return nil, nil
	}
	if strings.HasPrefix(f[0], "b") {
		if bs, err := strconv.Atoi(f[0][1:]); err != nil || bs != blockSize {
			return nil, fmt.Errorf("-layout %q: block size %q differs from -block-size %d", text, f[0], blockSize)
		}
		f = f[1:]
	}
	// fleet reads every kind but the state's size, which its layouts
	// leave out (an index scores checkpoints whole): take the pages off,
	// let it parse and validate, and put them back.
	pages := make([]int, len(f))
	ff := make([]string, 0, len(f)+1)
	ff = append(ff, "b"+strconv.Itoa(blockSize))
	for i, field := range f {
		name, arg, ok := strings.Cut(field, ":")
		switch name {
		case "full", "window", "chunked", "state", "shared":
		default:
			return nil, fmt.Errorf("-layout %q: group %d %q: unknown kind; want full, window:<tokens>, chunked:<tokens>, state:<pages> or shared:<group>", text, i, field)
		}
		if name == "state" {
			n, err := strconv.Atoi(arg)
			if !ok || err != nil || n < 1 {
				return nil, fmt.Errorf("-layout %q: group %d %q: a state group is \"state:<pages>\", its blocks per sequence (at least 1)", text, i, field)
			}
			pages[i], field = n, name
		}
		ff = append(ff, field)
	}
	l, err := fleet.ParseLayout(strings.Join(ff, " "))
	if err != nil {
		return nil, fmt.Errorf("-layout %q: %w", text, err)
	}
	if l.Groups[0].Kind != paged.FullAttention {
		return nil, fmt.Errorf("-layout %q: group 0 is %v, must be full", text, l.Groups[0].Kind)
	}
	for i := range l.Groups {
		l.Groups[i].Pages = pages[i]
	}
	return l.Groups, nil
}

// LayoutString writes groups in ParseLayout's form, with the block size
// first ("b16 full window:128 state:34"); a model of one attention kind
// (no groups) is "b<block size> full".
func LayoutString(blockSize int, groups []paged.Group) string {
	if len(groups) == 0 {
		groups = []paged.Group{{Kind: paged.FullAttention}}
	}
	var b strings.Builder
	b.WriteString("b" + strconv.Itoa(blockSize))
	for _, g := range groups {
		b.WriteString(" " + groupName(g))
	}
	return b.String()
}

// groupName is one group's field of a layout: its kind and size.
func groupName(g paged.Group) string {
	switch g.Kind {
	case paged.SlidingWindow:
		return "window:" + strconv.Itoa(g.Window)
	case paged.ChunkedLocal:
		return "chunked:" + strconv.Itoa(g.Chunk)
	case paged.State:
		return "state:" + strconv.Itoa(g.Pages)
	case paged.Shared:
		return "shared:" + strconv.Itoa(g.Target)
	}
	return g.Kind.String()
}
