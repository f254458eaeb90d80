package pg

import (
	"encoding/binary"
	"io"
	"math"
	"strings"
	"time"
)

// prcCopySQL is the COPY statement prcReader feeds.
var prcCopySQL = "COPY prc (" + strings.Join(prcColumns, ", ") + ") FROM STDIN WITH (FORMAT binary)"

// pgEpochMicros is 2000-01-01 UTC, PostgreSQL's timestamp epoch, in Unix
// microseconds.
const pgEpochMicros = 946684800 * 1000000

// prcReader encodes prc rows in PostgreSQL's binary COPY format as it is
// read. prc is nearly all of the rows; encoding them straight from the
// typed rows, rather than through pgx's per-value type lookup, leaves the
// CPU to the server, which is what limits ingest on a small machine.
// The column types are fixed by migrations/0001_init.sql.
type prcReader struct {
	rows []prcRow
	i    int
	buf  []byte
	off  int
	done bool
}

func newPrcReader(rows []prcRow) *prcReader {
	r := &prcReader{rows: rows, buf: make([]byte, 0, 64<<10)}
	r.buf = append(r.buf, "PGCOPY\n\377\r\n\000"...)
	r.buf = binary.BigEndian.AppendUint32(r.buf, 0) // flags
	r.buf = binary.BigEndian.AppendUint32(r.buf, 0) // header extension length
	return r
}

func (r *prcReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.done {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// fill encodes rows until the buffer holds about 64 KiB, then the trailer
// after the last row.
func (r *prcReader) fill() {
	for r.i < len(r.rows) && len(r.buf) < 64<<10 {
		r.buf = appendPrc(r.buf, &r.rows[r.i])
		r.i++
	}
	if r.i == len(r.rows) && !r.done {
		r.buf = binary.BigEndian.AppendUint16(r.buf, 0xffff) // -1: end of data
		r.done = true
	}
}

func appendPrc(b []byte, r *prcRow) []byte {
	p := &r.p
	b = binary.BigEndian.AppendUint16(b, uint16(len(prcColumns)))
	b = appendText(b, r.node)
	b = appendTime(b, r.ts)
	b = appendInt4(b, p.PID)
	b = appendText(b, p.Comm)
	b = appendText(b, p.Cmdline)
	b = appendText(b, p.State)
	b = appendInt4(b, p.PPID)
	b = appendText(b, p.User)
	b = appendText(b, p.App)
	b = appendFloat8(b, p.CPUPct)
	b = appendInt8(b, int64(p.CPUTimeMs)) // clamped by convert
	b = appendInt8(b, int64(p.RSS))
	b = appendInt8(b, p.DRSS)
	b = appendInt8(b, int64(p.VSZ))
	b = appendInt8(b, int64(p.Threads))
	b = appendInt4(b, p.FDs)
	b = appendFloat8(b, p.ReadBps)
	b = appendFloat8(b, p.WriteBps)
	b = appendFloat8(b, p.RunqWaitPct)
	b = appendText(b, p.Wchan)
	b = appendInt8(b, int64(p.StartTime))
	return b
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendInt4(b []byte, v int32) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendFloat8(b []byte, v float64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// appendTime encodes a timestamptz: microseconds since 2000-01-01 UTC.
// convert keeps sample times within years of now, far from the type's
// limits.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()-pgEpochMicros))
}
