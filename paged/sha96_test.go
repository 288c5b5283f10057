package paged

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
	"testing"
)

// TestSHA96IsOnWhereItCan: outside the race detector's build, on a
// little-endian machine, the known answer passes and the 96-byte path is
// the one Sum and chain.extend take (otherwise every other test of the
// hashes would pass through the general path alone).
func TestSHA96IsOnWhereItCan(t *testing.T) {
	h := NewSHA256Hasher()
	h.Sum(nil, make([]int32, 16), nil)
	want := !sha96Off && littleEndian
	if got := h.one96 != nil && h.one96.ok; got != want {
		t.Fatalf("sha96 on = %v, want %v", got, want)
	}
}

// movedState is a SHA-256 digest whose state append does not write in
// place: it always returns a new slice, as AppendBinary may.
type movedState struct{ hash.Hash }

func (d movedState) AppendBinary(b []byte) ([]byte, error) {
	return d.Hash.(encoding.BinaryAppender).AppendBinary(make([]byte, 0, 200))
}

// badMagic is a SHA-256 digest whose state has an unexpected prefix.
type badMagic struct{ hash.Hash }

func (d badMagic) AppendBinary(b []byte) ([]byte, error) {
	b, err := d.Hash.(encoding.BinaryAppender).AppendBinary(b)
	b[0] = 'x'
	return b, err
}

// TestSHA96TurnsOffOnOtherEncodings: a digest whose state is not appended
// in place, or not under SHA-256's magic, turns sha96 off at the first
// block it cannot read, and the chain's hashes, finished by the general
// path (the digest's Write and Sum), are SHA-256's all the same.
func TestSHA96TurnsOffOnOtherEncodings(t *testing.T) {
	if sha96Off || !littleEndian {
		t.Skip("sha96 is off in this build")
	}
	tokens := make([]int32, 16*6)
	for i := range tokens {
		tokens[i] = int32(uint32(i)*2654435761) & 0x7fffffff
	}
	root := rootHash(nil)
	var want []Hash
	parent := root
	for k := range 6 {
		msg := append([]byte(nil), parent[:]...)
		for _, tok := range tokens[16*k : 16*k+16] {
			msg = binary.LittleEndian.AppendUint32(msg, uint32(tok))
		}
		parent = sha256.Sum256(msg)
		want = append(want, parent)
	}
	for name, wrap := range map[string]func(hash.Hash) hash.Hash{
		"moved":     func(d hash.Hash) hash.Hash { return movedState{d} },
		"bad magic": func(d hash.Hash) hash.Hash { return badMagic{d} },
	} {
		h := NewSHA256Hasher()
		d := wrap(sha256.New())
		h.one96 = &sha96{d: d, app: d.(encoding.BinaryAppender), ok: true}
		c := chain{hasher: h, root: root, bs: 16}
		got := c.extend(nil, tokens, &SeqOptions{}, 0, 6)
		if h.one96.ok {
			t.Errorf("%s: sha96 still on", name)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d hashes, want %d", name, len(got), len(want))
		}
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: block %d is not SHA-256's", name, k)
			}
		}
	}
	// Partway: the first blocks through sha96, the rest, once its
	// digest stops answering in place, through the general path.
	h := NewSHA256Hasher()
	c := chain{hasher: h, root: root, bs: 16}
	got := c.extend(nil, tokens, &SeqOptions{}, 0, 3)
	d := movedState{sha256.New()}
	h.one96 = &sha96{d: d, app: d, ok: true}
	got = c.extend(got, tokens, &SeqOptions{}, 3, 6)
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("partway: block %d is not SHA-256's", k)
		}
	}
}
