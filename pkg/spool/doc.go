// Package spool owns the producer's outbox: encoded batches held in sequence
// order from the moment they are sampled until the consumer acknowledges
// them. Memory is the bounded in-memory outbox; Disk (durable, checksummed,
// surviving restarts) keeps the same contract.
//
// A Disk spool is a directory owned by one process (flock on "lock"):
// "spool_id" is the stream identity, "state" the ack point and highest
// sequence, and NNNNNNNNNNNNNNNNNNNN.seg the segment files named after their
// first sequence, holding records with a CRC-32C each (see disk_segment.go
// for the format). Appends are fdatasync'ed before they return; acknowledged
// segments are deleted whole. The bounds never lose data silently: shed
// per-process detail and dropped batches are written into the stream as
// "spool_shed" events.
//
// Outside Linux (the producer runs on Linux only, but the package builds
// everywhere) appends use f.Sync instead of fdatasync, and on Windows the
// lock is a LockFileEx byte lock instead of flock and directories are not
// synced.
package spool
