package kvevents

import (
	"encoding/binary"
	"fmt"
	"math"
)

// msgReader decodes the subset of MessagePack that vLLM's KV event frames
// use (nil, bool, integers, floats, str, bin, array, map; ext is skipped).
// It reads from one buffer without copying: strings and bins are views.
// Every method reports truncation or a type mismatch as ErrMalformed.
type msgReader struct {
	b   []byte
	off int
}

// maxSkipDepth bounds the nesting skip follows, so a hostile frame cannot
// exhaust the stack.
const maxSkipDepth = 32

func (r *msgReader) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, what, r.off)
}

func (r *msgReader) need(n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return r.fail("truncated")
	}
	return nil
}

func (r *msgReader) peek() (byte, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	return r.b[r.off], nil
}

// uintN reads an n-byte big-endian length or value after the type byte.
func (r *msgReader) uintN(n int) (uint64, error) {
	if err := r.need(n); err != nil {
		return 0, err
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(r.b[r.off])
	case 2:
		v = uint64(binary.BigEndian.Uint16(r.b[r.off:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(r.b[r.off:]))
	case 8:
		v = binary.BigEndian.Uint64(r.b[r.off:])
	}
	r.off += n
	return v, nil
}

// isNil consumes a nil and reports whether there was one.
func (r *msgReader) isNil() (bool, error) {
	c, err := r.peek()
	if err != nil {
		return false, err
	}
	if c == 0xc0 {
		r.off++
		return true, nil
	}
	return false, nil
}

// arrayLen reads an array header.
func (r *msgReader) arrayLen() (int, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x90: // fixarray: up to 15 elements in the type byte
		r.off++
		return int(c & 0x0f), nil
	case c == 0xdc || c == 0xdd: // array 16, array 32
		r.off++
		return r.count(r.uintN(lenBytes(c == 0xdc)))
	}
	return 0, r.fail("expected array")
}

// mapLen reads a map header.
func (r *msgReader) mapLen() (int, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80: // fixmap
		r.off++
		return int(c & 0x0f), nil
	case c == 0xde || c == 0xdf: // map 16, map 32
		r.off++
		return r.count(r.uintN(lenBytes(c == 0xde)))
	}
	return 0, r.fail("expected map")
}

// lenBytes is the size of a 16- or 32-bit length field.
func lenBytes(short bool) int {
	if short {
		return 2
	}
	return 4
}

// count checks an element count against the bytes left: every element
// takes at least one byte, so a larger count is a lie.
func (r *msgReader) count(n uint64, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, r.fail("element count exceeds frame")
	}
	return int(n), nil
}

// raw reads a str or bin and returns a view of its bytes and whether it was
// a str.
func (r *msgReader) raw() ([]byte, bool, error) {
	c, err := r.peek()
	if err != nil {
		return nil, false, err
	}
	var n uint64
	str := true
	r.off++
	// str and bin share their length encodings: fixstr, then 8-, 16- and
	// 32-bit lengths (0xd9-0xdb for str, 0xc4-0xc6 for bin).
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9, c == 0xc4:
		n, err = r.uintN(1)
	case c == 0xda, c == 0xc5:
		n, err = r.uintN(2)
	case c == 0xdb, c == 0xc6:
		n, err = r.uintN(4)
	default:
		r.off--
		return nil, false, r.fail("expected str or bin")
	}
	if err != nil {
		return nil, false, err
	}
	if c >= 0xc4 && c <= 0xc6 {
		str = false
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, false, r.fail("truncated")
	}
	v := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return v, str, nil
}

// str reads a str (not a bin).
func (r *msgReader) str() ([]byte, error) {
	v, isStr, err := r.raw()
	if err != nil {
		return nil, err
	}
	if !isStr {
		return nil, r.fail("expected str, got bin")
	}
	return v, nil
}

// isInt reports whether the next value is an integer.
func (r *msgReader) isInt() bool {
	if r.off >= len(r.b) {
		return false
	}
	c := r.b[r.off]
	return c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)
}

// int reads any integer and returns its 64-bit two's-complement pattern,
// so int64 -1 and uint64 2^64-1 read the same.
func (r *msgReader) int() (uint64, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	r.off++
	switch {
	case c <= 0x7f: // positive fixint
		return uint64(c), nil
	case c >= 0xe0: // negative fixint, -32..-1
		return uint64(int64(int8(c))), nil
	case c >= 0xcc && c <= 0xcf: // uint 8/16/32/64
		return r.uintN(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3: // int 8/16/32/64: sign-extend
		n := 1 << (c - 0xd0)
		v, err := r.uintN(n)
		if err != nil {
			return 0, err
		}
		shift := 64 - 8*n
		return uint64(int64(v<<shift) >> shift), nil
	}
	r.off--
	return 0, r.fail("expected integer")
}

// float reads a float or an integer as float64.
func (r *msgReader) float() (float64, error) {
	c, err := r.peek()
	if err != nil {
		return 0, err
	}
	// msgspec writes floats as float64, but any number is a valid ts.
	switch c {
	case 0xca:
		r.off++
		v, err := r.uintN(4)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		r.off++
		v, err := r.uintN(8)
		return math.Float64frombits(v), err
	}
	if r.isInt() {
		v, err := r.int()
		if c >= 0xd0 { // signed types and negative fixints
			return float64(int64(v)), err
		}
		return float64(v), err
	}
	return 0, r.fail("expected number")
}

// skip steps over one value of any type.
func (r *msgReader) skip(depth int) error {
	if depth > maxSkipDepth {
		return r.fail("nesting too deep")
	}
	c, err := r.peek()
	if err != nil {
		return err
	}
	// Skipping is how unknown or unused fields (lora_name, extra_keys,
	// fields newer vLLM versions add) pass without being understood.
	switch {
	case c == 0xc0 || c == 0xc2 || c == 0xc3: // nil, false, true
		r.off++
		return nil
	case r.isInt():
		_, err := r.int()
		return err
	case c == 0xca || c == 0xcb:
		_, err := r.float()
		return err
	case c&0xe0 == 0xa0 || (c >= 0xc4 && c <= 0xc6) || (c >= 0xd9 && c <= 0xdb):
		_, _, err := r.raw()
		return err
	case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
		n, err := r.arrayLen()
		if err != nil {
			return err
		}
		for range n {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		n, err := r.mapLen()
		if err != nil {
			return err
		}
		for range 2 * n {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case c >= 0xd4 && c <= 0xd8: // fixext 1..16: type byte + 2^k data bytes
		r.off++
		return r.advance(1 + 1<<(c-0xd4))
	case c >= 0xc7 && c <= 0xc9: // ext 8/16/32
		r.off++
		n, err := r.uintN(1 << (c - 0xc7))
		if err != nil {
			return err
		}
		if n > uint64(len(r.b)) {
			return r.fail("truncated")
		}
		return r.advance(1 + int(n))
	}
	return r.fail(fmt.Sprintf("unknown type byte 0x%02x", c))
}

func (r *msgReader) advance(n int) error {
	if err := r.need(n); err != nil {
		return err
	}
	r.off += n
	return nil
}
