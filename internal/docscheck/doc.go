// Package docscheck holds no code, only tests: they read the repository's
// README.md and docs/*.md and check what a newcomer would copy from them
// against the code, so that a renamed function, a dropped flag or a
// deleted test fails a test instead of a reader's first try.
//
//   - docsaudit_snippets_test.go parses every ```go block (wrapped in a
//     function body when it is a fragment), type-checks the library's
//     packages from source, and checks each qualified name (paged.Config),
//     each field key of a literal of a library type, each field or method
//     selected on a variable whose type the snippets make known
//     (m, err := paged.New(...)), and the number of arguments and results
//     of each call to a library function or method.
//   - docsaudit_names_test.go checks the Go names in inline code
//     (`Manager.AdmitChunk`, `Config.HashMemo`, `paged.MaxSeqLen`), and
//     those in the library's comments (paged.Config.HostBlocks; a type's
//     Member where the type is the package's own).
//   - docsaudit_commands_test.go checks that every `go test -run/-bench/
//     -fuzz` pattern shown matches a function of the packages it names,
//     that every `kvbench` command shown names a subcommand and flags it
//     has (it builds kvbench; skipped with -short), and that every test
//     the docs cite by name exists.
//   - docsaudit_links_test.go checks relative links, their #anchors, and
//     that every Markdown file the docs name is in the repository.
//   - docsaudit_conflicts_test.go checks that no Markdown, Go or .ci file
//     holds a merge conflict marker a merge left behind.
//   - docsaudit_errors_test.go samples bad input to the packages without
//     a hostile test of their own (kvmem, the trace readers, the attention
//     reference, the eviction registry, sched.Submit): each refusal wraps
//     its sentinel, starts with its package's prefix and a lowercase word,
//     and changes nothing.
//
// Variables a snippet uses without declaring them (prompt, tokens) carry no
// type and are not checked: the snippet test proves that what it can
// resolve is current, not that every snippet compiles.
package docscheck
