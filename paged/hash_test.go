package paged_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pagedkv/pagedkv/paged"
)

// otherHasher is a Hasher the manager cannot clone by itself.
type otherHasher struct{ paged.FastHasher }

// TestPromptHasherMatchesManager: hashes computed by a PromptHasher, on
// other goroutines, equal the manager's own for every kind of extra key,
// and AddHashed then admits with the same hits as Add.
func TestPromptHasherMatchesManager(t *testing.T) {
	for _, hasher := range []paged.Hasher{nil, paged.FastHasher{}} {
		m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 64, Hasher: hasher, HashSeed: []byte("seed")})
		require.NoError(t, err)
		prompt := seqOf(1, 22)
		optsList := []*paged.SeqOptions{nil, {LoRA: 3}, {Salt: "tenant"}, {MM: []paged.MMRange{{Start: 5, End: 9, Hash: "img"}}}}
		var wg sync.WaitGroup
		got := make([][]paged.Hash, len(optsList))
		for i, opts := range optsList {
			ph, err := m.NewPromptHasher(nil)
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = ph.Hashes(nil, prompt, opts)
			}()
		}
		wg.Wait()
		for i, opts := range optsList {
			want, err := m.BlockHashes(nil, prompt, opts)
			require.NoError(t, err)
			assert.Equal(t, want, got[i], "opts %d", i)
			assert.Len(t, want, 5)
		}

		first, _, err := m.Create(prompt, optsList[1])
		require.NoError(t, err)
		require.NoError(t, m.Free(first))
		id, err := m.AddHashed(prompt, got[1], optsList[1])
		require.NoError(t, err)
		cached, err := m.Admit(id)
		require.NoError(t, err)
		assert.Equal(t, 20, cached, "every full block but the last token's hits")
		require.NoError(t, m.Check())
	}
}

func TestAddHashedBadInput(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	require.NoError(t, err)
	ph, err := m.NewPromptHasher(nil)
	require.NoError(t, err)
	prompt := seqOf(1, 10)
	hashes := ph.Hashes(nil, prompt, nil)
	before := m.Stats()
	for _, tc := range []struct {
		name   string
		prompt []int32
		hashes []paged.Hash
		opts   *paged.SeqOptions
		want   error
	}{
		{"too few hashes", prompt, hashes[:1], nil, paged.ErrInvalid},
		{"too many hashes", prompt, append(hashes, paged.Hash{}), nil, paged.ErrInvalid},
		{"empty prompt", nil, nil, nil, paged.ErrInvalid},
		{"too long", seqOf(1, 1000), nil, nil, paged.ErrNever},
		{"bad options", prompt, hashes, &paged.SeqOptions{LoRA: -1}, paged.ErrInvalid},
		{"negative MaxTokens", prompt, hashes, &paged.SeqOptions{MaxTokens: -1}, paged.ErrInvalid},
	} {
		_, err := m.AddHashed(tc.prompt, tc.hashes, tc.opts)
		assert.ErrorIs(t, err, tc.want, tc.name)
		assert.Equal(t, before, m.Stats(), tc.name)
	}

	c, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16, Hasher: otherHasher{}})
	require.NoError(t, err)
	_, err = c.NewPromptHasher(nil)
	assert.ErrorIs(t, err, paged.ErrInvalid, "a custom hasher cannot be cloned")
	ph, err = c.NewPromptHasher(otherHasher{})
	require.NoError(t, err)
	want, err := c.BlockHashes(nil, prompt, nil)
	require.NoError(t, err)
	assert.Equal(t, want, ph.Hashes(nil, prompt, nil))
}

// TestNoSpaceErrorMessage: the lazily formatted ErrNoSpace still says what
// was refused and why.
func TestNoSpaceErrorMessage(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 4, NumBlocks: 5})
	require.NoError(t, err)
	a, _, err := m.Create(seqOf(1, 8), nil)
	require.NoError(t, err)
	_, _, err = m.Create(seqOf(50, 4), nil)
	require.NoError(t, err)
	b, err := m.Add(seqOf(100, 8), nil)
	require.NoError(t, err)
	_, err = m.Admit(b)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, fmt.Sprintf("paged: not enough free blocks: Admit %v: needs 2 blocks, 1 available", b), err.Error())
	err = m.Append(a, seqOf(9, 8)...)
	require.ErrorIs(t, err, paged.ErrNoSpace)
	assert.Equal(t, fmt.Sprintf("paged: not enough free blocks: Append to %v: needs 2 blocks, 1 available", a), err.Error())
	assert.False(t, errors.Is(err, paged.ErrNever))
}

// TestMaxTokensHintAllocatesNothing: with the hint, decoding up to it never
// grows a buffer.
func TestMaxTokensHintAllocatesNothing(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64})
	require.NoError(t, err)
	id, _, err := m.Create(seqOf(1, 100), &paged.SeqOptions{MaxTokens: 100 + 400})
	require.NoError(t, err)
	tok := int32(0)
	allocs := testing.AllocsPerRun(300, func() {
		tok++
		if err := m.Append(id, tok); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
	require.NoError(t, m.Check())
}

// TestAddCopiesPromptWithRoom: Add and AddHashed size the buffers for the
// hint but never keep the caller's slice, whatever its capacity.
func TestAddCopiesPromptWithRoom(t *testing.T) {
	m, err := paged.New(paged.Config{BlockSize: 16, NumBlocks: 64})
	require.NoError(t, err)
	ph, err := m.NewPromptHasher(nil)
	require.NoError(t, err)
	for _, hashed := range []bool{false, true} {
		for _, hint := range []int{0, 40, 100 + 400} {
			prompt := make([]int32, 100, 600)
			copy(prompt, seqOf(1, 100))
			opts := &paged.SeqOptions{MaxTokens: hint}
			var id paged.SeqID
			if hashed {
				id, err = m.AddHashed(prompt, ph.Hashes(nil, prompt, opts), opts)
			} else {
				id, err = m.Add(prompt, opts)
			}
			require.NoError(t, err)
			_, err = m.Admit(id)
			require.NoError(t, err)
			for i := range 20 {
				require.NoError(t, m.Append(id, int32(5000+i)))
			}
			clear(prompt[:cap(prompt)])
			got, err := m.Tokens(id)
			require.NoError(t, err)
			assert.Equal(t, append(seqOf(1, 100), seqOf(5000, 20)...), got, "hashed %v, hint %d", hashed, hint)
			require.NoError(t, m.Check())
			require.NoError(t, m.Free(id))
		}
	}
}

// TestSHA256HasherIsSHA256: Sum is SHA-256 of the parent, the tokens as
// little-endian int32 and the extra keys, for the 96-byte input it hashes
// through its own path (a parent and sixteen tokens, no extra keys) and
// every other shape, mixed in one hasher, from a zero value or New.
func TestSHA256HasherIsSHA256(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, h := range []*paged.SHA256Hasher{paged.NewSHA256Hasher(), {}} {
		for i := range 2000 {
			var parent paged.Hash
			for j := range parent {
				parent[j] = byte(rng.Uint32())
			}
			n := []int{16, 16, 16, 0, 1, 15, 17, 32}[i%8]
			tokens := make([]int32, n)
			for j := range tokens {
				tokens[j] = int32(rng.Uint32() >> 1)
			}
			var extra []byte
			if i%5 == 4 {
				extra = []byte{'L', byte(i), 0, 0, 0}
			}
			msg := append([]byte(nil), parent[:]...)
			for _, tok := range tokens {
				msg = binary.LittleEndian.AppendUint32(msg, uint32(tok))
			}
			msg = append(msg, extra...)
			want := paged.Hash(sha256.Sum256(msg))
			p := &parent
			if i%7 == 6 && parent == (paged.Hash{}) {
				p = nil
			}
			require.Equal(t, want, h.Sum(p, tokens, extra), "input %d: %d tokens, %d extra bytes", i, n, len(extra))
		}
	}
	var zero paged.Hash
	want := sha256.Sum256(make([]byte, 96))
	assert.Equal(t, paged.Hash(want), paged.NewSHA256Hasher().Sum(nil, make([]int32, 16), nil), "a nil parent is the zero hash")
	assert.Equal(t, paged.Hash(want), paged.NewSHA256Hasher().Sum(&zero, make([]int32, 16), nil))
	h, tokens := paged.NewSHA256Hasher(), make([]int32, 16)
	assert.Zero(t, testing.AllocsPerRun(100, func() { zero = h.Sum(&zero, tokens, nil) }), "Sum allocates nothing once warm")
}
