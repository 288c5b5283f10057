package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A server that expects to hold up to 512 requests of about 2,000 tokens
// (prompt and max_tokens) at once reserves their records and buffers when
// it makes its manager, so its first requests take no page faults inside
// the manager's calls.
func ExampleReserve() {
	m, err := paged.New(paged.Config{
		NumBlocks: 4096,
		Reserve:   paged.Reserve{Sequences: 512, Tokens: 512 * 2000},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	prompt := make([]int32, 0, 2000) // the request's tokens, with room for its outputs
	for i := range 1500 {
		prompt = append(prompt, int32(i))
	}
	id, _ := m.AddOwned(prompt, &paged.SeqOptions{MaxTokens: 2000})
	cached, _ := m.Admit(id)
	table, _ := m.Table(id)
	fmt.Println(cached, len(table))
	// Output:
	// 0 94
}
