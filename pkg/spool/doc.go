// Package spool owns the producer's outbox: encoded batches held in sequence
// order from the moment they are sampled until the consumer acknowledges
// them. Memory is the bounded in-memory outbox; Disk (durable, checksummed,
// surviving restarts) keeps the same contract.
package spool
