package spool

import (
	"fmt"
	"sync"
	"time"
)

// Memory is a bounded in-memory outbox. When full, the oldest records are
// dropped and counted: Dropped tells how many, so a loss is never silent.
type Memory struct {
	mu       sync.Mutex
	max      int
	recs     []Record
	last     uint64
	dropped  uint64
	bytes    int
	changed  chan struct{}
	now      func() time.Time
	maxBytes int
}

// NewMemory holds at most maxRecords records and maxBytes payload bytes
// (0: no byte bound), starting after sequence last.
func NewMemory(maxRecords, maxBytes int, last uint64) *Memory {
	return &Memory{max: maxRecords, maxBytes: maxBytes, last: last, changed: make(chan struct{}, 1), now: time.Now}
}

func (m *Memory) LastSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

func (m *Memory) Append(seq uint64, payload []byte) error {
	m.mu.Lock()
	if seq != m.last+1 {
		m.mu.Unlock()
		return fmt.Errorf("append seq %d: want %d", seq, m.last+1)
	}
	m.last = seq
	m.recs = append(m.recs, Record{Seq: seq, Time: m.now(), Payload: payload})
	m.bytes += len(payload)
	for len(m.recs) > m.max || (m.maxBytes > 0 && m.bytes > m.maxBytes && len(m.recs) > 1) {
		m.bytes -= len(m.recs[0].Payload)
		m.recs[0] = Record{}
		m.recs = m.recs[1:]
		m.dropped++
	}
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

func (m *Memory) Pending(after uint64, max int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, r := range m.recs {
		if r.Seq > after {
			out = append(out, r)
			if len(out) == max {
				break
			}
		}
	}
	return out, nil
}

func (m *Memory) Ack(seq uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.recs) && m.recs[i].Seq <= seq {
		m.bytes -= len(m.recs[i].Payload)
		i++
	}
	m.recs = append(m.recs[:0], m.recs[i:]...)
	return nil
}

func (m *Memory) Changed() <-chan struct{} { return m.changed }

// Dropped is the number of records dropped because the outbox was full.
func (m *Memory) Dropped() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Len is the number of records held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}
