package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDiskConcurrentAppendPendingAck runs a sampler, a sender that acks as
// it goes (as the transport does) and a stats reader at once, with small
// segments so that segment creation, deletion, shedding and a spell of full
// disk all race with reads. Run under -race.
func TestDiskConcurrentAppendPendingAck(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, DiskOptions{MaxBytes: 64 << 10, MemoryFallback: 1 << 20})
	s.segMax = 4 << 10
	full := failSegments(s, syscall.ENOSPC)
	const n = 300
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	var appended atomic.Uint64
	wg.Go(func() {
		for i := range n {
			full.Store(i >= 100 && i < 150) // a spell of full disk
			seq, err := s.AppendNext(func(seq uint64) ([]byte, error) {
				return testPayload(t, seq, s.clock.Now(), 10), nil
			})
			if err != nil {
				errc <- err
				return
			}
			appended.Store(seq)
		}
		full.Store(false)
	})
	wg.Go(func() {
		var sent uint64
		for sent < n {
			recs, err := s.Pending(sent, 8)
			if err != nil {
				errc <- err
				return
			}
			for _, r := range recs {
				if r.Seq <= sent {
					errc <- fmt.Errorf("pending after %d returned %d", sent, r.Seq)
					return
				}
				if b := decodeBatch(t, r.Payload); b.Seq != r.Seq {
					errc <- fmt.Errorf("record %d holds batch %d", r.Seq, b.Seq)
					return
				}
				sent = r.Seq
			}
			if len(recs) > 0 && sent%3 == 0 {
				if err := s.Ack(sent); err != nil {
					errc <- err
					return
				}
			}
			if len(recs) == 0 {
				select {
				case <-s.Changed():
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
					errc <- fmt.Errorf("sender stuck at %d of %d", sent, n)
					return
				}
			}
		}
	})
	wg.Go(func() {
		for appended.Load() < n && ctx.Err() == nil {
			st := s.Stats()
			if st.Records < 0 || st.LastSeq < st.Acked && st.Acked > n {
				errc <- fmt.Errorf("stats %+v", st)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	// Over the bound, some records may have been dropped; none may be late
	// or reordered, and everything still held is contiguous up to n.
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 0 || st.MemoryRecords != 0 || st.LastSeq != n {
		t.Fatalf("final stats %+v", st)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Fatalf("segments left: %v", f)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pending(0, 1); err == nil {
		t.Fatal("Pending after Close succeeded")
	}
	if err := s.Append(n+1, nil); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// BenchmarkDiskAppend measures Append with its fdatasync, the cost per
// sample on the producer, against the raw write+fdatasync of the same bytes
// as the baseline.
func BenchmarkDiskAppend(b *testing.B) {
	payload := testPayload(b, 1, t0, 40)
	b.Run("spool", func(b *testing.B) {
		d, err := OpenDisk(b.TempDir(), DiskOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			seq := d.LastSeq() + 1
			if err := d.Append(seq, payload); err != nil {
				b.Fatal(err)
			}
			if seq%64 == 0 {
				d.Ack(seq)
			}
		}
	})
	b.Run("raw-write-fdatasync", func(b *testing.B) {
		f, err := os.CreateTemp(b.TempDir(), "raw")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.Write(payload); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDiskOpen measures opening (scanning and indexing) a spool of
// 64 MiB of host-only batches, the worst case for the index: it reports the
// records indexed and the heap the open spool holds.
func BenchmarkDiskOpen(b *testing.B) {
	dir := b.TempDir()
	payload := testPayload(b, 1, t0, 0)
	const total = 64 << 20
	var seq uint64
	for size := 0; size < total; {
		seg := []byte(segMagic)
		name := fmt.Sprintf("%020d.seg", seq+1)
		for len(seg) < 8<<20 {
			seq++
			seg = appendRecord(seg, seq, t0.Add(time.Duration(seq)*2*time.Second), flagShed, payload)
		}
		if err := os.WriteFile(dir+"/"+name, seg, 0o600); err != nil {
			b.Fatal(err)
		}
		size += len(seg)
	}
	b.SetBytes(total)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, err := OpenDisk(dir, DiskOptions{Now: func() time.Time { return t0 }})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := d.Stats()
		if st.Records != int(seq) {
			b.Fatalf("indexed %d of %d", st.Records, seq)
		}
		b.ReportMetric(float64(st.Records), "records")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(st.Records), "heap-B/record")
		d.Close()
	}
}
