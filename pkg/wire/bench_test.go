package wire

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// loadSamples reads the batch captured from a real /proc (testdata/wire).
func loadSamples(tb testing.TB) *Batch {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "samples.json"))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := JSON.Decode(raw)
	if err != nil {
		tb.Fatalf("samples.json: %v", err)
	}
	return m.(*Batch)
}

// deflater mimics permessage-deflate as coder/websocket runs it for the
// transport: BestSpeed, context takeover (one compressor per connection,
// flushed after every message, so later messages refer back to earlier ones).
type deflater struct {
	out bytes.Buffer
	w   *flate.Writer
	in  bytes.Buffer
	r   io.ReadCloser
	buf []byte
}

func newDeflater() *deflater {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.out, flate.BestSpeed)
	d.r = flate.NewReader(&d.in)
	return d
}

// reset starts a new connection.
func (d *deflater) reset() {
	d.out.Reset()
	d.in.Reset()
	d.w.Reset(&d.out)
	d.r.(flate.Resetter).Reset(&d.in, nil)
}

// roundTrip compresses msg as one WebSocket message, decompresses it on the
// "peer" side, and returns the plain bytes and the compressed size.
func (d *deflater) roundTrip(tb testing.TB, msg []byte) ([]byte, int) {
	d.out.Reset()
	if _, err := d.w.Write(msg); err != nil {
		tb.Fatal(err)
	}
	if err := d.w.Flush(); err != nil {
		tb.Fatal(err)
	}
	n := d.out.Len()
	d.in.Write(d.out.Bytes())
	d.buf = append(d.buf[:0], make([]byte, len(msg))...)
	if _, err := io.ReadFull(d.r, d.buf); err != nil {
		tb.Fatal(err)
	}
	return d.buf, n
}

// BenchmarkCodec measures encode + decode of the captured samples with each
// codec, JSON being the baseline, and reports per process row:
//
//	batch         the six samples in one batch (a spool replay)
//	stream        six one-sample batches, one message each (live operation)
//	+flate        the same messages through deflate as above, timed too
//	encode        encode only into a reused buffer (allocations per message)
//
// ns/row (wall), cpu-ns/row (CPU of the whole process, garbage collection
// included; steadier on a busy machine) and B/row divide by the number of
// process rows; the bytes include the sample's other tables, which ride
// along with its processes.
func BenchmarkCodec(b *testing.B) {
	batch := loadSamples(b)
	rows := 0
	var stream []Message
	for i, s := range batch.Samples {
		rows += len(s.Procs)
		stream = append(stream, &Batch{Seq: uint64(i + 1), Samples: []Sample{s}})
	}
	var cpu0 time.Duration
	start := func(b *testing.B) {
		b.ReportAllocs()
		cpu0 = processCPU()
	}
	perRow := func(b *testing.B, size int) {
		per := float64(b.N) * float64(rows)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/row")
		if cpu := processCPU() - cpu0; cpu0 > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/row")
		}
		b.ReportMetric(float64(size)/float64(rows), "B/row")
	}
	for _, c := range []struct {
		name  string
		codec Codec
	}{{"json", JSON}, {"binary", Binary}} {
		for _, shape := range []struct {
			name string
			msgs []Message
		}{{"batch", []Message{batch}}, {"stream", stream}} {
			b.Run(c.name+"/"+shape.name, func(b *testing.B) {
				start(b)
				var buf []byte
				size := 0
				for b.Loop() {
					size = 0
					for _, m := range shape.msgs {
						var err error
						if buf, err = c.codec.Append(buf[:0], m); err != nil {
							b.Fatal(err)
						}
						size += len(buf)
						if _, err := c.codec.Decode(buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				perRow(b, size)
			})
			b.Run(c.name+"/"+shape.name+"+flate", func(b *testing.B) {
				d := newDeflater()
				start(b)
				var buf []byte
				size := 0
				for b.Loop() {
					d.reset() // each iteration is a new connection
					size = 0
					for _, m := range shape.msgs {
						var err error
						if buf, err = c.codec.Append(buf[:0], m); err != nil {
							b.Fatal(err)
						}
						plain, n := d.roundTrip(b, buf)
						size += n
						if _, err := c.codec.Decode(plain); err != nil {
							b.Fatal(err)
						}
					}
				}
				perRow(b, size)
			})
		}
		b.Run(c.name+"/encode", func(b *testing.B) {
			start(b)
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = c.codec.Append(buf[:0], batch); err != nil {
					b.Fatal(err)
				}
			}
			perRow(b, len(buf))
		})
	}
}

// TestEncodeAllocs holds the steady-state promise: appending a batch into a
// reused buffer allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	batch := loadSamples(t)
	buf, err := Binary.Append(nil, batch)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		buf, _ = Binary.Append(buf[:0], batch)
	})
	if raceEnabled {
		t.Logf("%.1f allocations per encode under -race (sync.Pool drops at random); not checked", allocs)
		return
	}
	// sync.Pool may drop the encoder at a GC; anything near zero is steady.
	if allocs >= 1 {
		t.Fatalf("%.1f allocations per encode, want 0", allocs)
	}
}
