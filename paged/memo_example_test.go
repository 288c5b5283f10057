package paged_test

import (
	"fmt"

	"github.com/pagedkv/pagedkv/paged"
)

// Config.HashMemo: the next turn of a conversation resends the whole
// history; its blocks still in the pool give their hashes back instead of
// being hashed again, and the hashes are those SHA-256 gives.
func ExampleConfig_hashMemo() {
	m, err := paged.New(paged.Config{NumBlocks: 64, HashMemo: true})
	if err != nil {
		panic(err)
	}
	turn := make([]int32, 200) // 12 full blocks of 16 tokens
	for i := range turn {
		turn[i] = int32(i)
	}
	id, _, err := m.Create(turn, nil)
	if err != nil {
		panic(err)
	}
	for t := range int32(56) { // the reply: the sequence reaches 256 tokens
		if err := m.Append(id, 1000+t); err != nil {
			panic(err)
		}
	}
	history, _ := m.Tokens(id)
	next := append(append([]int32(nil), history...), 7, 7, 7, 7) // the user's next message
	if err := m.Free(id); err != nil {
		panic(err)
	}

	before := m.Stats()
	id, err = m.Add(next, nil)
	if err != nil {
		panic(err)
	}
	st := m.Stats()
	fmt.Println("blocks hashed:", st.BlocksHashed-before.BlocksHashed)
	fmt.Println("hashes from the memo:", st.HashesRecalled-before.HashesRecalled)

	// The same hashes as a manager without the memo computes.
	plain, _ := paged.New(paged.Config{NumBlocks: 64})
	want, _ := plain.BlockHashes(nil, next, nil)
	got, _ := m.BlockHashes(nil, next, nil)
	same := len(got) == len(want)
	for i := range want {
		same = same && got[i] == want[i]
	}
	fmt.Println("same hashes:", same)
	if err := m.Free(id); err != nil {
		panic(err)
	}
	// Output:
	// blocks hashed: 1
	// hashes from the memo: 15
	// same hashes: true
}
