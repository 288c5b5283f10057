package kvmem

import "errors"

// ErrInvalid is returned for a malformed spec, type, deployment or
// argument; the message names the bad field.
var ErrInvalid = errors.New("kvmem: invalid argument")

// ErrTooSmall is returned by capacity planning when the memory cannot hold
// the weights plus the reserve, or leaves room for fewer than two blocks.
var ErrTooSmall = errors.New("kvmem: memory too small")

// DefaultBlockSize is the block size in tokens when a Deployment or
// PoolBlocks leaves it 0: the same as paged.DefaultBlockSize and vLLM's
// default on GPUs.
const DefaultBlockSize = 16

// MaxBlocks is the largest pool a paged.Manager takes (paged.MaxBlocks,
// 2^24 blocks; kvmem does not import paged, so this is a copy a test keeps
// equal): Capacity.PoolBlocks refuses a plan with more.
const MaxBlocks = 1 << 24
