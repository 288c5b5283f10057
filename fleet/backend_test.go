package fleet

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStreamStateRoundTrip(t *testing.T) {
	for _, st := range []StreamState{
		{},
		{Gen: 7, Last: 42, Started: true, Seen: 1700000000000000000},
		{Gen: 1, AnyStart: true, Partial: true, Dirty: true, Expired: true, Seen: -5},
		{Gen: 2, Started: true, HasLayout: true, Seen: 9, Life: 3},
	} {
		got, err := ParseStreamState(st.String())
		require.NoError(t, err)
		assert.Equal(t, st, got)
	}
	got, err := ParseStreamState("3 4 sp 5 ~2") // a backend's intermediate tag
	require.NoError(t, err)
	assert.Equal(t, StreamState{Gen: 3, Last: 4, Started: true, Partial: true, Seen: 5, tag: "~2"}, got)
	assert.Equal(t, "3 4 sp 5 ~2", got.String(), "the tag is given back, so a compare-and-set matches the stored state")
	// A tagged state of a later life of the ID (fleetids' Life and
	// audit9's tag, merged): both survive the round trip.
	got, err = ParseStreamState("3 4 sp 5 L6 ~2")
	require.NoError(t, err)
	assert.Equal(t, StreamState{Gen: 3, Last: 4, Started: true, Partial: true, Seen: 5, Life: 6, tag: "~2"}, got)
	assert.Equal(t, "3 4 sp 5 L6 ~2", got.String())
	got, err = ParseStreamState("3 4 sp 5 L6")
	require.NoError(t, err)
	assert.Equal(t, StreamState{Gen: 3, Last: 4, Started: true, Partial: true, Seen: 5, Life: 6}, got)
	for _, bad := range []string{"", "1 2 s", "x 2 s 3", "1 2 q 3", "1 -2 s 3", "1 2 sq 3", "7 8 s x", "1 2 s 3 Lx"} {
		got, err := ParseStreamState(bad)
		require.ErrorIs(t, err, ErrMalformed, "%q", bad)
		assert.Zero(t, got, "a malformed %q gives the zero state, not a partly parsed one", bad)
	}
}

// FuzzParseStreamState: whatever a backend holds, parsing never panics,
// and a state that parses prints to a string that parses to it again.
func FuzzParseStreamState(f *testing.F) {
	f.Add("0 0 - 0")
	f.Add("12 345 sapdx 1700000000000000000 ~3")
	f.Add("1 2 s")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseStreamState(s)
		if err != nil {
			return
		}
		again, err := ParseStreamState(st.String())
		if err != nil || again != st {
			t.Fatalf("%q parsed to %+v, which prints as %q and parses to %+v, %v", s, st, st.String(), again, err)
		}
	})
}

// FuzzParseLayout: whatever a backend holds, parsing a layout never
// panics, and a layout that parses is valid and prints to a string that
// parses to it again.
func FuzzParseLayout(f *testing.F) {
	f.Add("b16 full")
	f.Add("b2 full window:3 chunked:4 state shared:0")
	f.Add("b1 shared:0 full")
	f.Add("b0 window:-1")
	f.Add("b1048576 chunked:1073741824")
	f.Add("b1048576 window:1099511627776") // over MaxLayoutSpan
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLayout(s)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("%q parsed to an invalid layout: %v", s, err)
		}
		again, err := ParseLayout(l.String())
		if err != nil || again.String() != l.String() {
			t.Fatalf("%q parsed to %q, which parses to %q, %v", s, l.String(), again.String(), err)
		}
	})
}
