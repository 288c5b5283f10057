// Package fleettest checks fleet.Backend implementations against a
// reference model: random event streams with lost and replayed events,
// tier moves, copies and clears, applied through a fleet.Index, with
// every server's score compared to the model's after each batch.
package fleettest
