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
//	record:  magic u32 | length u32 | flags u32 | seq u64 | time i64 | crc u32 | hcrc u32 | payload[length]
//
// All integers are little-endian; time is Unix nanoseconds. crc is CRC-32C
// (Castagnoli) of the payload and hcrc of the header bytes from length to
// crc, so the header checksum covers the whole record. A torn write or a
// flipped bit is caught before anything is trusted. The per-record magic
// lets the reader find the next record after a corrupt one; the header
// checksum makes a header found that way trustworthy on its own, so a record
// whose payload is damaged is skipped whole, and checking a candidate costs
// a few bytes rather than a payload (the reader stays linear on any input).
const (
	segMagic     = "SYSMSEG1"
	segHeaderLen = len(segMagic)
	recMagic     = 0x52_4c_50_53 // "SPLR" little-endian
	recHeaderLen = 36
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
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.UnixNano()))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	dst = binary.LittleEndian.AppendUint32(dst, headerCRC(dst[start:]))
	return append(dst, payload...)
}

// headerCRC is the checksum of a record header's length..crc fields.
func headerCRC(hdr []byte) uint32 { return crc32.Checksum(hdr[4:32], castagnoli) }

// entry indexes one record of a segment.
// It is kept small (32 bytes): a spool of host-only batches at its byte
// bound indexes a million records.
type entry struct {
	seq   uint64
	ns    int64 // append time, Unix nanoseconds
	off   int64 // of the record header within the segment file
	len   int32 // payload bytes
	flags uint32
}

func (e entry) end() int64   { return e.off + recordLen(int(e.len)) }
func (e entry) t() time.Time { return time.Unix(0, e.ns) }

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
		e, why, skip := parseRecord(data, off, last)
		if why == "" {
			ents = append(ents, e)
			last = e.seq
			off = e.end()
			valid = off
			continue
		}
		// Resynchronise: past a record whose header is intact, else at the
		// next offset where a whole valid record starts.
		next := skip
		for o := off + 1; next == 0 && o+recHeaderLen <= size; o++ {
			if binary.LittleEndian.Uint32(data[o:]) != recMagic {
				continue
			}
			if _, w, sk := parseRecord(data, o, last); w == "" {
				next = o
			} else if sk > 0 {
				next = o // an intact header: its record is damage of its own
			}
		}
		if next == size || next == 0 {
			if next == 0 {
				next = size
			}
			bad = append(bad, damage{off: off, end: next, tail: true, why: why})
			break
		}
		bad = append(bad, damage{off: off, end: next, why: why})
		off = next
	}
	return ents, bad, valid, nil
}

// parseRecord checks the record at off; why is empty when it is valid.
// after is the seq of the previous valid record (0 if none). When the header
// is intact but the record is not acceptable, skip is the offset just after
// it (0 otherwise): the reader continues there without looking inside.
func parseRecord(data []byte, off int64, after uint64) (e entry, why string, skip int64) {
	size := int64(len(data))
	if size-off < recHeaderLen {
		return entry{}, "short record header", 0
	}
	h := data[off : off+recHeaderLen]
	if binary.LittleEndian.Uint32(h) != recMagic {
		return entry{}, "bad record magic", 0
	}
	if binary.LittleEndian.Uint32(h[32:]) != headerCRC(h) {
		return entry{}, "header checksum mismatch", 0
	}
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	flags := binary.LittleEndian.Uint32(h[8:])
	seq := binary.LittleEndian.Uint64(h[12:])
	ns := int64(binary.LittleEndian.Uint64(h[20:]))
	if n > maxRecordPayload {
		return entry{}, fmt.Sprintf("record length %d over limit", n), 0
	}
	if size-off-recHeaderLen < n {
		// A torn tail: the header made it to disk, the payload did not.
		return entry{}, "short record payload", 0
	}
	e = entry{seq: seq, ns: ns, off: off, len: int32(n), flags: flags}
	switch {
	case binary.LittleEndian.Uint32(h[28:]) != crc32.Checksum(data[off+recHeaderLen:e.end()], castagnoli):
		why = "checksum mismatch"
	case flags&^flagKnown != 0:
		why = fmt.Sprintf("unknown flags %#x", flags)
	case seq == 0 || seq <= after:
		why = fmt.Sprintf("seq %d not after %d", seq, after)
	case after > 0 && seq-after > maxSeqJump:
		why = fmt.Sprintf("seq %d too far after %d", seq, after)
	case ns == math.MinInt64:
		why = "bad time"
	default:
		return e, "", 0
	}
	return entry{}, why, e.end()
}
