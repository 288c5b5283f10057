package main

import (
	"errors"
	"io"
)

// runFrag is replaced by the frag study's implementation.
func runFrag(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
