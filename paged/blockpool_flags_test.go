package paged

// cachedFlags returns every block's hasContent, in a new slice: the
// per-block flag as an array, for tests that compare two managers'.
func (p *blockPool) cachedFlags() []bool {
	c := make([]bool, len(p.index.meta))
	for id := range c {
		c[id] = p.index.meta[id].cached
	}
	return c
}

// blockHashes returns every block's hash (its record's), in a new slice.
func (p *blockPool) blockHashes() []Hash {
	h := make([]Hash, len(p.index.meta))
	for id := range h {
		h[id] = p.index.meta[id].hash
	}
	return h
}
