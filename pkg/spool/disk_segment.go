package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/sysmon/sysmon/pkg/wire"
)

// A segment file is a header followed by records:
//
//	segment: "SYSMSEG1" record*
//	record:  magic u32 | length u32 | crc u32 | flags u32 | seq u64 | time i64 | payload[length]
//
// All integers are little-endian. crc is CRC-32C (Castagnoli) over the length,
// flags, seq and time fields and the payload, so a torn write, a flipped bit
// or a record header pointing into garbage is caught before the payload is
// trusted. The per-record magic lets the reader find the next record after a
// corrupt one without trusting the corrupt record's length.
const (
	segMagic     = "SYSMSEG1"
	segHeaderLen = len(segMagic)
	recMagic     = 0x52_4c_50_53 // "SPLR" little-endian
	recHeaderLen = 32
	// maxRecordPayload bounds a record's payload to what a consumer accepts in
	// one message; a larger length field is corrupt.
	maxRecordPayload = wire.MaxMessageBytes
	// maxSeqJump bounds the sequence gap between neighbouring records that the
	// reader accepts when it resynchronises after a corrupt record: shedding
	// removes whole batches, but never billions of them, and the bound makes a
	// random byte pattern far less likely to pass for a record.
	maxSeqJump = 1 << 32
)

// Record flags.
const (
	flagShed  = 1 << iota // per-process detail already shed; do not decode again
	flagKnown = flagShed
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordLen is the number of bytes a record with this payload takes on disk.
func recordLen(payload int) int64 { return int64(recHeaderLen + payload) }

// appendRecord appends the on-disk form of one record to dst.
func appendRecord(dst []byte, seq uint64, t time.Time, flags uint32, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, recMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, filled below
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.UnixNano()))
	dst = append(dst, payload...)
	rec := dst[start:]
	binary.LittleEndian.PutUint32(rec[8:], recordCRC(rec[:recHeaderLen], payload))
	return dst
}

func recordCRC(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[4:8])
	c = crc32.Update(c, castagnoli, hdr[12:recHeaderLen])
	return crc32.Update(c, castagnoli, payload)
}

// entry indexes one record of a segment.
type entry struct {
	seq   uint64
	time  time.Time
	off   int64 // of the record header within the segment file
	len   int   // payload bytes
	flags uint32
}

func (e entry) end() int64 { return e.off + recordLen(e.len) }

// damage is a byte range of a segment that holds no valid record.
type damage struct {
	off, end int64
	tail     bool // nothing valid follows: a torn or corrupt tail
	why      string
}

func (d damage) String() string {
	kind := "corrupt records"
	if d.tail {
		kind = "torn or corrupt tail"
	}
	return fmt.Sprintf("%s at bytes %d..%d (%s)", kind, d.off, d.end, d.why)
}

// readSegment indexes the records of one segment file's contents. It never
// panics: a bad header, a torn tail or corrupt records in the middle come
// back as damage, and the valid records around them are still returned, in
// strictly increasing seq order. valid is the offset just after the last
// valid record (where appending may continue).
func readSegment(data []byte) (ents []entry, bad []damage, valid int64, err error) {
	if len(data) < segHeaderLen || string(data[:segHeaderLen]) != segMagic {
		return nil, nil, 0, fmt.Errorf("not a spool segment (bad header)")
	}
	off := int64(segHeaderLen)
	valid = off
	var last uint64
	size := int64(len(data))
	for off < size {
		e, why := parseRecord(data, off, last)
		if why == "" {
			ents = append(ents, e)
			last = e.seq
			off = e.end()
			valid = off
			continue
		}
		// Resynchronise: the next offset where a whole valid record starts.
		next := int64(-1)
		for o := off + 1; o+recHeaderLen <= size; o++ {
			if binary.LittleEndian.Uint32(data[o:]) != recMagic {
				continue
			}
			if _, w := parseRecord(data, o, last); w == "" {
				next = o
				break
			}
		}
		if next < 0 {
			bad = append(bad, damage{off: off, end: size, tail: true, why: why})
			break
		}
		bad = append(bad, damage{off: off, end: next, why: why})
		off = next
	}
	return ents, bad, valid, nil
}

// parseRecord checks the record at off; why is empty when it is valid.
// after is the seq of the previous valid record (0 if none).
func parseRecord(data []byte, off int64, after uint64) (entry, string) {
	size := int64(len(data))
	if size-off < recHeaderLen {
		return entry{}, "short record header"
	}
	h := data[off : off+recHeaderLen]
	if binary.LittleEndian.Uint32(h) != recMagic {
		return entry{}, "bad record magic"
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if n > maxRecordPayload {
		return entry{}, fmt.Sprintf("record length %d over limit", n)
	}
	if size-off-recHeaderLen < int64(n) {
		return entry{}, "short record payload"
	}
	payload := data[off+recHeaderLen : off+recHeaderLen+int64(n)]
	if binary.LittleEndian.Uint32(h[8:]) != recordCRC(h, payload) {
		return entry{}, "checksum mismatch"
	}
	flags := binary.LittleEndian.Uint32(h[12:])
	seq := binary.LittleEndian.Uint64(h[16:])
	ns := int64(binary.LittleEndian.Uint64(h[24:]))
	switch {
	case flags&^flagKnown != 0:
		return entry{}, fmt.Sprintf("unknown flags %#x", flags)
	case seq == 0 || seq <= after:
		return entry{}, fmt.Sprintf("seq %d not after %d", seq, after)
	case after > 0 && seq-after > maxSeqJump:
		return entry{}, fmt.Sprintf("seq %d too far after %d", seq, after)
	case ns == math.MinInt64:
		return entry{}, "bad time"
	}
	return entry{seq: seq, time: time.Unix(0, ns), off: off, len: int(n), flags: flags}, ""
}
