package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// A server that builds each prompt in its own slice, with room for the
// request's outputs, hands it over instead of having it copied.
func ExampleManager_AddOwned() {
	m, _ := paged.New(paged.Config{BlockSize: 4, NumBlocks: 16})
	maxTokens := 8                        // the prompt and max_tokens
	prompt := make([]int32, 0, maxTokens) // e.g. the request's decoded token IDs
	prompt = append(prompt, 11, 12, 13, 14, 15)
	id, _ := m.AddOwned(prompt, &paged.SeqOptions{MaxTokens: maxTokens})
	// prompt is the manager's now: the caller does not touch it again.
	_, _ = m.Admit(id)
	_ = m.Append(id, 16, 17)
	tokens, _ := m.Tokens(id)
	fmt.Println(tokens)
	// Output:
	// [11 12 13 14 15 16 17]
}
