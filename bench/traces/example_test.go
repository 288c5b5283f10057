package traces_test

import (
	"fmt"
	"strings"

	"github.com/pagedkv/pagedkv/bench/traces"
)

func ExampleReadAzure() {
	csv := `TIMESTAMP,ContextTokens,GeneratedTokens
2024-05-10 00:00:01.500000+00:00,700,30
2024-05-10 00:00:00.000000+00:00,1200,12
`
	reqs, err := traces.ReadAzure(strings.NewReader(csv))
	if err != nil {
		panic(err)
	}
	for _, r := range reqs {
		fmt.Println(r.Arrival, r.InputTokens, r.OutputTokens)
	}
	// Output:
	// 1.5s 700 30
	// 0s 1200 12
}

func ExampleAzureConv() {
	reqs := traces.AzureConv()
	fmt.Println(len(reqs), reqs[0].InputTokens, reqs[0].OutputTokens)
	// Output: 19366 374 44
}
