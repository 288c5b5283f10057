// Package docscheck holds no code, only tests: they read the repository's
// README.md and docs/*.md and check the Go in them against the packages it
// names, so that a renamed function, a dropped field or a changed number of
// results fails a test instead of a reader's build.
//
// docsaudit_snippets_test.go parses every ```go block (wrapped in a function
// body when it is a fragment), type-checks the library's packages from
// source, and checks each qualified name (paged.Config), each field key of a
// literal of a library type, each field or method selected on a variable
// whose type the snippet makes known (m, err := paged.New(...)), and the
// number of arguments and results of each call to a library function or
// method. Names in inline code (`Manager.AdmitChunk`, `Config.HashMemo`,
// `paged.MaxSeqLen`) are checked the same way.
//
// Variables a snippet uses without declaring them (prompt, tokens) carry no
// type and are not checked: the test proves that what it can resolve is
// current, not that every snippet compiles.
package docscheck
