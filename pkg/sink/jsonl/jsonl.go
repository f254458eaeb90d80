// Package jsonl owns the consumer's "other backend": every decoded batch is
// written as one JSON line (to stdout or a file) instead of PostgreSQL, for
// jq, Vector or a log shipper. A batch is acknowledged only after its line is
// flushed (and fsynced, for a file).
package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

// Line is the JSON object written per batch.
type Line struct {
	Node       string        `json:"node"`
	SpoolID    string        `json:"spool_id"`
	BootID     string        `json:"boot_id,omitempty"`
	Seq        uint64        `json:"seq"`
	ReceivedAt time.Time     `json:"received_at"`
	Samples    []wire.Sample `json:"samples"`
}

// Sink writes batches as JSON lines. Within one consumer run a replayed
// batch (seq at or below the stream's last written) is skipped; across
// consumer restarts delivery is at-least-once, since the file holds no
// index (consumers of the lines dedupe on node, spool_id, seq).
type Sink struct {
	mu  sync.Mutex
	w   *bufio.Writer
	out io.Writer
	// OnClosed, when set, is called when the output's reader has gone away
	// (EPIPE); the batch stays unacknowledged.
	OnClosed func(error)
	f        *os.File // nil for stdout-like writers: flushed but not synced
	last     map[string]uint64
	now      func() time.Time
}

// New writes to w (e.g. os.Stdout).
func New(w io.Writer) *Sink {
	return &Sink{out: w, w: bufio.NewWriterSize(w, 64<<10), last: map[string]uint64{}, now: time.Now}
}

// Create appends to the file at path, creating it 0640.
func Create(path string) (*Sink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open jsonl output: %w", err)
	}
	s := New(f)
	s.f = f
	return s, nil
}

func streamKey(h *wire.Hello) string { return h.Node + "\x00" + h.SpoolID }

// OpenStream reports the last sequence written for the stream in this run.
func (s *Sink) OpenStream(_ context.Context, h *wire.Hello) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[streamKey(h)], nil
}

// WriteBatch writes one line and returns after it is flushed (and synced).
func (s *Sink) WriteBatch(_ context.Context, h *wire.Hello, b *wire.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := streamKey(h)
	if b.Seq <= s.last[key] {
		return nil
	}
	line, err := json.Marshal(Line{Node: h.Node, SpoolID: h.SpoolID, BootID: h.BootID, Seq: b.Seq, ReceivedAt: s.now().UTC(), Samples: b.Samples})
	if err != nil {
		return fmt.Errorf("encode batch %d: %w", b.Seq, err)
	}
	line = append(line, '\n')
	if s.f != nil {
		if err := s.appendFile(line); err != nil {
			return err
		}
	} else {
		_, err := s.w.Write(line)
		if err == nil {
			err = s.w.Flush()
		}
		if errors.Is(err, syscall.EPIPE) && s.OnClosed != nil {
			// The reader is gone (`| head`): nothing will ever read this
			// output again, so stop rather than retry forever.
			s.OnClosed(err)
		}
		if err != nil {
			s.w.Reset(s.out) // bufio errors are sticky; let a retry start clean
			return fmt.Errorf("write jsonl: %w", err)
		}
	}
	s.last[key] = b.Seq
	return nil
}

// Close flushes and closes a file output.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// appendFile writes one whole line or nothing: a failed write (a full disk)
// is cut back so the file never holds half a line, and the batch stays
// unacknowledged for a retry.
func (s *Sink) appendFile(line []byte) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("stat jsonl output: %w", err)
	}
	if _, err := s.f.Write(line); err != nil {
		s.f.Truncate(st.Size())
		return fmt.Errorf("write jsonl: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync jsonl: %w", err)
	}
	return nil
}
