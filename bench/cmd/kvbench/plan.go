package main

import (
	"errors"
	"io"
)

// runPlan is replaced by the plan study's implementation.
func runPlan(args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
