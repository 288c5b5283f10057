package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit174QuickstartPrintsTheWalkthrough compares the whole output
// with the walkthrough it documents, line by line: A and B's prompts (11
// and 10 tokens, B hitting the system prompt's two blocks), a decode batch
// of both sequences, B and C sharing every block after the fork, the copy
// of the shared last block 6 into C's new block 7, each sequence's own
// table, the counts of used, cached and free blocks at every stage (after
// freeing all, nothing used and four full blocks cached), D's hit and the
// events.
func TestAudit174QuickstartPrintsTheWalkthrough(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	assert.Equal(t, strings.Split(quickstartWant, "\n"), strings.Split(out.String(), "\n"))
}

const quickstartWant = `admitted A (0 tokens already cached) and B (8 cached: the system prompt's two full blocks)

== after admission
  seq0.1   11 tokens  table [1 2 3]
  seq1.1   10 tokens  table [1 2 4]
  blocks: 4 used, 0 cached, 11 free of 15  | prefix hits 8/21 tokens | copies 0

last step's batch: stride 16, seq lens [14 13], new-token slots [21 24]

== after 3 decode steps
  seq0.1   14 tokens  table [1 2 3 5]
  seq1.1   13 tokens  table [1 2 4 6]
  blocks: 6 used, 0 cached, 9 free of 15  | prefix hits 8/21 tokens | copies 0

== after fork (B and C share all blocks)
  seq1.1   13 tokens  table [1 2 4 6]
  seq2.1   13 tokens  table [1 2 4 6]
  blocks: 6 used, 0 cached, 9 free of 15  | prefix hits 8/21 tokens | copies 0

copy-on-write directive: copy block 6 into block 7 before the kernels run

== after copy-on-write
  seq1.1   14 tokens  table [1 2 4 6]
  seq2.1   14 tokens  table [1 2 4 7]
  blocks: 7 used, 0 cached, 8 free of 15  | prefix hits 8/21 tokens | copies 1

== after freeing all
  blocks: 0 used, 4 cached, 11 free of 15  | prefix hits 8/21 tokens | copies 1

a new request D with the same system prompt finds 8 tokens cached

== after D
  seq2.3   10 tokens  table [1 2 7]
  blocks: 3 used, 2 cached, 10 free of 15  | prefix hits 16/31 tokens | copies 1

KV events for a router:
  #1 BlockStored 2 block(s)
  #2 BlockStored 1 block(s)
  #3 BlockStored 1 block(s)
`
