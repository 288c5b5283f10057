package bench

import "fmt"

// Conversations numbers the conversations of a Mooncake-style trace: each
// request joins the conversation of the earliest request that introduced
// the deepest of its blocks seen before, the shared first block (a system
// prompt) apart; a request that shares nothing beyond its first block
// starts a new conversation. Numbers count from 0 in order of first
// appearance. This is the linking docs/cache.md uses to describe the
// conversation trace ("The trace's structure"), and what
// SplitConversations splits by. A request without hash IDs (an Azure
// trace's, or an empty prompt) shares nothing and starts a conversation of
// its own.
func Conversations(reqs []Request) []int {
	owner := make(map[int64]int)
	conv := make([]int, len(reqs))
	n := 0
	for i, r := range reqs {
		c := -1
		for j := len(r.HashIDs) - 1; j >= 1; j-- {
			if o, ok := owner[r.HashIDs[j]]; ok {
				c = o
				break
			}
		}
		if c < 0 {
			c = n
			n++
		}
		conv[i] = c
		for _, h := range r.HashIDs[min(1, len(r.HashIDs)):] {
			if _, ok := owner[h]; !ok {
				owner[h] = c
			}
		}
	}
	return conv
}

// SplitConversations returns the requests of the conversations whose
// number (see Conversations) is k modulo n, in trace order: a trace of
// about 1/n of the conversations with their time structure intact, so
// that a choice made on one part can be checked on the others. Replay a
// part at 1/n of the whole trace's capacity to keep the cache's turnover,
// in seconds, what it was. It refuses n < 1 and k outside [0, n).
func SplitConversations(reqs []Request, k, n int) ([]Request, error) {
	if n < 1 || k < 0 || k >= n {
		return nil, fmt.Errorf("bench: conversation part %d of %d: want 0 <= part < parts", k, n)
	}
	conv := Conversations(reqs)
	var out []Request
	for i, r := range reqs {
		if conv[i]%n == k {
			out = append(out, r)
		}
	}
	return out, nil
}
