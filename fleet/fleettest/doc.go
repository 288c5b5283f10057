// Package fleettest checks fleet.Backend implementations against a
// reference model: random event streams with lost and replayed events,
// tier moves, copies and clears, applied through a fleet.Index, with
// every server's score compared to the model's after each batch; and
// server churn: names that come and go through a small table of server
// IDs (CheckChurn), late events racing with the reuse of an ID
// (CheckLateEvents), concurrent registration through several routers
// (CheckConcurrentChurn) and the backend's Rename (CheckRename).
package fleettest
