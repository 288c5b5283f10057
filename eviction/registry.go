package eviction

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownPolicy is returned by ByName for a name no policy has.
var ErrUnknownPolicy = errors.New("eviction: unknown policy")

// registry lists the policies by the names the study and the CLI use, in
// the order the documentation presents them.
var registry = []struct {
	name    string
	factory Factory
}{
	{"lru", NewLRU},
	{"fifo", NewFIFO},
	{"lfu", NewLFU},
	{"clock", NewCLOCK},
	{"sieve", NewSIEVE},
	{"s3fifo", NewS3FIFO},
	{"arc", NewARC},
	{"slru", NewSLRU},
	{"priority", NewPriority},
	{"leaflru", NewLeafLRU},
	{"chain", NewChain},
}

// Names returns the names of all policies, "lru" (the default) first. The
// slice is new on every call.
func Names() []string {
	names := make([]string, len(registry))
	for i, r := range registry {
		names[i] = r.name
	}
	return names
}

// ByName returns the factory of the policy called name (case does not
// matter), or an error wrapping ErrUnknownPolicy.
func ByName(name string) (Factory, error) {
	for _, r := range registry {
		if strings.EqualFold(r.name, name) {
			return r.factory, nil
		}
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownPolicy, name, strings.Join(Names(), ", "))
}
