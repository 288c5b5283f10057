package main

import (
	"errors"
	"io"
)

// runCache is replaced by the cache study's implementation.
func runCache(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
