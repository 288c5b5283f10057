package attention

import (
	"errors"
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// ErrInvalid is returned for arguments out of range: a bad shape, a slot or
// block outside the store, vectors of the wrong length, or a plan that does
// not match the batch.
var ErrInvalid = errors.New("attention: invalid argument")

// Shape is the attention geometry of one layer.
type Shape struct {
	// BlockSize is the number of token slots per block, as the manager's.
	BlockSize int
	// KVHeads is the number of key/value heads.
	KVHeads int
	// QueryHeads is the number of query heads, a multiple of KVHeads:
	// grouped-query attention, QueryHeads/KVHeads query heads per KV head.
	QueryHeads int
	// HeadDim is the number of channels per head.
	HeadDim int
}

func (sh Shape) validate() error {
	if sh.BlockSize < 1 || sh.KVHeads < 1 || sh.HeadDim < 1 || sh.QueryHeads < sh.KVHeads || sh.QueryHeads%sh.KVHeads != 0 {
		return fmt.Errorf("%w: shape %+v: sizes must be positive and QueryHeads a multiple of KVHeads", ErrInvalid, sh)
	}
	if int64(sh.BlockSize)*int64(sh.KVHeads)*int64(sh.HeadDim) > 1<<28 {
		return fmt.Errorf("%w: shape %+v: a block is too large", ErrInvalid, sh)
	}
	return nil
}

// Store is a host-side paged KV cache of one layer: numBlocks physical
// blocks, each holding BlockSize tokens' keys and values for every KV head,
// addressed by the manager's slots (block*BlockSize + offset). It keeps,
// for each quantized codec, the encoding of what was written (and the
// float32 values too for a per-channel codec, or without a codec); readers
// see only the decoded values, except where the format keeps a
// full-precision residual (below).
//
// A per-channel codec (groups along tokens) cannot encode a block before
// all its tokens are there, so, as KIVI does with its residual, a block's
// keys or values stay in float32 until the write of its last slot encodes
// them; reads of a full block decode, reads of a partial block see float32.
// Per-token codecs encode every token as it is written.
//
// A Store is not safe for concurrent use.
type Store struct {
	shape       Shape
	numBlocks   int
	key, value  part
	tile        int // floats per (block, head) tile
	tilesPerBlk int
}

// part is the storage of keys or of values.
type part struct {
	codec  Codec
	f      []float32 // [block][head][row][dim], as written; nil for a per-token codec
	codes  []uint8   // same indexing
	params []float32 // [block][head][per tile]
	per    int       // params per tile
}

// NewStore returns a store of numBlocks blocks of the given shape, with the
// codecs for keys and values (nil for float32).
func NewStore(shape Shape, numBlocks int, key, value Codec) (*Store, error) {
	if err := shape.validate(); err != nil {
		return nil, err
	}
	if numBlocks < 1 || int64(numBlocks)*int64(shape.BlockSize)*int64(shape.KVHeads)*int64(shape.HeadDim) > 1<<34 {
		return nil, fmt.Errorf("%w: %d blocks of shape %+v", ErrInvalid, numBlocks, shape)
	}
	s := &Store{shape: shape, numBlocks: numBlocks, tile: shape.BlockSize * shape.HeadDim, tilesPerBlk: shape.KVHeads}
	s.key, s.value = s.newPart(key), s.newPart(value)
	return s, nil
}

func (s *Store) newPart(c Codec) part {
	n := s.numBlocks * s.tilesPerBlk * s.tile
	p := part{codec: c}
	// A per-token codec encodes each token as it comes: the float32 values
	// are never read again, so they are not kept.
	if c == nil || !c.PerToken() {
		p.f = make([]float32, n)
	}
	if c != nil {
		p.codes = make([]uint8, n)
		p.per = c.Params(s.shape.BlockSize, s.shape.HeadDim)
		p.params = make([]float32, s.numBlocks*s.tilesPerBlk*p.per)
	}
	return p
}

// Shape returns the store's shape.
func (s *Store) Shape() Shape { return s.shape }

// Codecs returns the key and value codecs (nil for float32).
func (s *Store) Codecs() (key, value Codec) { return s.key.codec, s.value.codec }

// Write stores one token's keys and values (KVHeads*HeadDim values each,
// head after head) at a slot the manager handed out.
func (s *Store) Write(slot int64, k, v []float32) error {
	sh := s.shape
	if n := sh.KVHeads * sh.HeadDim; len(k) != n || len(v) != n {
		return fmt.Errorf("%w: write of %d keys and %d values, want %d each", ErrInvalid, len(k), len(v), n)
	}
	if slot < 0 || slot >= int64(s.numBlocks)*int64(sh.BlockSize) {
		return fmt.Errorf("%w: slot %d outside %d blocks of %d", ErrInvalid, slot, s.numBlocks, sh.BlockSize)
	}
	blk, row := int(slot/int64(sh.BlockSize)), int(slot%int64(sh.BlockSize))
	s.key.write(s, blk, row, k)
	s.value.write(s, blk, row, v)
	return nil
}

func (p *part) write(s *Store, blk, row int, x []float32) {
	sh := s.shape
	d := sh.HeadDim
	for h := range sh.KVHeads {
		t := blk*s.tilesPerBlk + h
		base := t * s.tile
		if p.codec != nil && p.codec.PerToken() {
			per := p.per / sh.BlockSize
			p.codec.Encode(p.codes[base+row*d:], p.params[t*p.per+row*per:], x[h*d:(h+1)*d], 1, d)
			continue
		}
		copy(p.f[base+row*d:base+(row+1)*d], x[h*d:(h+1)*d])
		if p.codec != nil && row == sh.BlockSize-1 {
			p.codec.Encode(p.codes[base:], p.params[t*p.per:], p.f[base:base+s.tile], sh.BlockSize, d)
		}
	}
}

// Copy runs copy-on-write directives: each Dst block becomes a copy of its
// Src block, encodings included. Run them before the step's writes, as a
// server runs them before its kernels.
func (s *Store) Copy(copies []paged.Copy) error {
	for _, c := range copies {
		if c.Src < 0 || int(c.Src) >= s.numBlocks || c.Dst < 0 || int(c.Dst) >= s.numBlocks {
			return fmt.Errorf("%w: copy %d -> %d outside %d blocks", ErrInvalid, c.Src, c.Dst, s.numBlocks)
		}
	}
	for _, c := range copies {
		s.key.copyBlock(s, int(c.Src), int(c.Dst))
		s.value.copyBlock(s, int(c.Src), int(c.Dst))
	}
	return nil
}

func (p *part) copyBlock(s *Store, src, dst int) {
	n := s.tilesPerBlk * s.tile
	if p.f != nil {
		copy(p.f[dst*n:(dst+1)*n], p.f[src*n:(src+1)*n])
	}
	if p.codec != nil {
		copy(p.codes[dst*n:(dst+1)*n], p.codes[src*n:(src+1)*n])
		m := s.tilesPerBlk * p.per
		copy(p.params[dst*m:(dst+1)*m], p.params[src*m:(src+1)*m])
	}
}

// read returns the first rows tokens of head h in block blk as the
// attention sees them, decoding into scratch (BlockSize*HeadDim floats)
// when the format is quantized.
func (p *part) read(s *Store, blk, h, rows int, scratch []float32) []float32 {
	sh := s.shape
	t := blk*s.tilesPerBlk + h
	base := t * s.tile
	d := sh.HeadDim
	switch {
	case p.codec == nil:
		return p.f[base : base+rows*d]
	case p.codec.PerToken():
		p.codec.Decode(scratch, p.codes[base:], p.params[t*p.per:], rows, d)
	case rows < sh.BlockSize:
		return p.f[base : base+rows*d] // the residual of a partial block
	default:
		p.codec.Decode(scratch, p.codes[base:], p.params[t*p.per:], rows, d)
	}
	return scratch[:rows*d]
}
