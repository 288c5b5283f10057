module github.com/pagedkv/pagedkv

go 1.25
