package fleet

import "github.com/pagedkv/pagedkv/paged"

// ServerID is the dense number the Index gives a server the first time it
// sees its name, from 0. It is the server's bit in the backends' holder
// sets.
type ServerID int32

// Backend stores the index's content: for each block hash, which servers
// hold it on which tier. The Index orders, filters and checks events before
// they reach a backend, and serializes all calls, so a backend needs no
// locking of its own. Implementations: Memory (the default) and Redis.
type Backend interface {
	// Init prepares the backend for one model's index with room for
	// maxServers servers and drops whatever it held before.
	Init(model string, maxServers int) error
	// Apply records one server's events, in order: BlockStored adds a copy
	// of each hash on Medium, BlockRemoved takes one away, BlockMoved takes
	// one from From and adds one on Medium, AllBlocksCleared drops every
	// entry of the server. A server holds a hash on a tier while it has at
	// least one copy there (a manager may hold one content in two blocks,
	// each stored and removed by its own event). It returns ErrIndexLost
	// when the backend's content vanished since Init.
	Apply(server ServerID, events []paged.Event) error
	// Clear drops every entry of one server.
	Clear(server ServerID) error
	// Lookup appends the holder sets of each hash, in order, to dst: words
	// uint64 of device holders (bit s for server s) then words uint64 of
	// host holders, 2*words per hash. It returns ErrIndexLost when the
	// backend's content vanished since Init.
	Lookup(hashes []paged.Hash, words int, dst []uint64) ([]uint64, error)
}

// wordsFor is the number of 64-bit words a holder set of n servers needs.
func wordsFor(n int) int { return (n + 63) / 64 }
