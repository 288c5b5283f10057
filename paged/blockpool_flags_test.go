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
