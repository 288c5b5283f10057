package main

import (
	"errors"
	"io"
)

// runFleet is replaced by the fleet study's implementation.
func runFleet(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
