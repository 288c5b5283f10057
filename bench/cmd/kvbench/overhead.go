package main

import (
	"errors"
	"io"
)

// runOverhead is replaced by the overhead study's implementation.
func runOverhead(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
