package main

import (
	"errors"
	"io"
)

// runQuant is replaced by the quant study's implementation.
func runQuant(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
