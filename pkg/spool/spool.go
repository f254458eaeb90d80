package spool

import "time"

// Record is one encoded batch (a wire.Binary payload) and its sequence.
type Record struct {
	Seq     uint64
	Time    time.Time // when it was appended
	Payload []byte
}

// Outbox is what the transport drains. Implementations are safe for
// concurrent use by one sampler and one sender.
type Outbox interface {
	// LastSeq is the highest sequence ever appended (0 if none); the next
	// batch is numbered LastSeq()+1.
	LastSeq() uint64
	// Append stores a batch; seq must be LastSeq()+1.
	Append(seq uint64, payload []byte) error
	// Pending returns up to max records with Seq > after, oldest first.
	Pending(after uint64, max int) ([]Record, error)
	// Ack drops every record with Seq <= seq.
	Ack(seq uint64) error
	// Changed is signalled (without blocking) after every Append.
	Changed() <-chan struct{}
}
