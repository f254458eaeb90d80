package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// Binary is the "sysmon.v1" codec: the compact encoding of SPEC.md. It is
// safe for concurrent use; encoder scratch state lives in a sync.Pool so that
// appending into a reused buffer allocates nothing in steady state.
var Binary Codec = binaryCodec{}

type binaryCodec struct{}

func (binaryCodec) Subprotocol() string { return SubprotocolBinary }

// Message header: magic "SM", format version, message type, then the body
// length as a uvarint. The length makes messages self-delimiting outside a
// WebSocket (a spool file, a pipe); inside one it must match exactly.
const (
	binMagic0  = 'S'
	binMagic1  = 'M'
	binVersion = 1
	binHdrLen  = 4
)

// Wire types: the low three bits of every field key, as in Protocol Buffers,
// so that a reader can skip a field it does not know.
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtBytes   = 2
)

// Float fields are carried as fixed-point thousandths when that is exact to
// the nearest thousandth and the integer stays well inside float64's exact
// range (2^50: rounding n/1000*1000 back gives n), otherwise as IEEE 754 bits.
const (
	realScale = 1000
	realLimit = 1 << 50
)

// BinaryHeaderLen reports the total length of the binary message that starts
// src (header plus body), so that messages stored back to back can be split.
// It needs only the header; it fails with ErrMalformed on a bad header or
// ErrTooBig when the length is over MaxMessageBytes.
func BinaryHeaderLen(src []byte) (int, error) {
	_, hdr, body, err := parseHeader(src)
	if err != nil {
		return 0, err
	}
	return hdr + body, nil
}

// parseHeader returns the message type, header length and body length.
func parseHeader(src []byte) (MessageType, int, int, error) {
	if len(src) < binHdrLen+1 {
		return 0, 0, 0, fmt.Errorf("decode binary: %d bytes, short header: %w", len(src), ErrMalformed)
	}
	if src[0] != binMagic0 || src[1] != binMagic1 {
		return 0, 0, 0, fmt.Errorf("decode binary: bad magic %#x %#x: %w", src[0], src[1], ErrMalformed)
	}
	if src[2] != binVersion {
		return 0, 0, 0, fmt.Errorf("decode binary: format version %d, want %d: %w", src[2], binVersion, ErrMalformed)
	}
	t := MessageType(src[3])
	n, k := binary.Uvarint(src[binHdrLen:])
	if k <= 0 {
		return 0, 0, 0, fmt.Errorf("decode binary: bad body length: %w", ErrMalformed)
	}
	if n > MaxMessageBytes {
		return 0, 0, 0, fmt.Errorf("decode binary: body of %d bytes: %w", n, ErrTooBig)
	}
	return t, binHdrLen + k, int(n), nil
}

func (binaryCodec) Decode(src []byte) (Message, error) {
	if len(src) > MaxMessageBytes {
		return nil, fmt.Errorf("decode binary: %d bytes: %w", len(src), ErrTooBig)
	}
	t, hdr, n, err := parseHeader(src)
	if err != nil {
		return nil, err
	}
	if hdr+n != len(src) {
		return nil, fmt.Errorf("decode binary: body length %d, have %d bytes: %w", n, len(src)-hdr, ErrMalformed)
	}
	body := src[hdr:]
	var m Message
	switch t {
	case TypeHello:
		m, err = decodeHello(body)
	case TypeWelcome:
		m, err = decodeWelcome(body)
	case TypeBatch:
		d := decoderPool.Get().(*decoder)
		m, err = d.decodeBatch(body)
		d.release()
		decoderPool.Put(d)
	case TypeAck:
		m, err = decodeAck(body)
	default:
		return nil, fmt.Errorf("decode binary: type %d: %w", t, ErrUnknownType)
	}
	if err != nil {
		return nil, fmt.Errorf("decode binary %s: %w", typeName(t), err)
	}
	// A batch's strings all come from its string table, whose entries were
	// checked for UTF-8 once each; checking every use again would cost a
	// fifth of the decode.
	if err := validate(m, t == TypeBatch); err != nil {
		return nil, fmt.Errorf("decode binary %s: %w", typeName(t), err)
	}
	return m, nil
}

func typeName(t MessageType) string {
	if s, ok := jsonTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type %d", t)
}

// Append appends the binary encoding of m to dst. On error dst is returned
// unchanged (truncated back to its length on entry); errors wrap ErrTooBig
// when m is over a limit (the producer should split the batch) and
// ErrMalformed when m cannot be represented (a zero or out-of-range time).
func (binaryCodec) Append(dst []byte, m Message) ([]byte, error) {
	start := len(dst)
	if isNil(m) {
		return dst, fmt.Errorf("encode binary: nil message: %w", ErrMalformed)
	}
	t := TypeOf(m)
	if err := validate(m, true); err != nil {
		return dst, fmt.Errorf("encode binary %s: %w", typeName(t), err)
	}
	dst = append(dst, binMagic0, binMagic1, binVersion, byte(t))
	bodyStart := len(dst)
	var err error
	switch m := m.(type) {
	case *Hello:
		dst, err = appendHello(dst, m)
	case *Welcome:
		dst, err = appendWelcome(dst, m)
	case *Batch:
		e := encoderPool.Get().(*encoder)
		dst, err = e.appendBatch(dst, m)
		e.release()
		encoderPool.Put(e)
	case *Ack:
		dst = appendAck(dst, m)
	default:
		err = fmt.Errorf("unknown message type %d: %w", t, ErrMalformed)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("encode binary %s: %w", typeName(t), err)
	}
	dst = finishLen(dst, bodyStart)
	if len(dst)-start > MaxMessageBytes {
		return dst[:start], fmt.Errorf("encode binary %s: %d bytes: %w", typeName(t), len(dst)-start, ErrTooBig)
	}
	return dst, nil
}

// --- primitives -------------------------------------------------------------

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendKey(dst []byte, field, wt uint64) []byte {
	return binary.AppendUvarint(dst, field<<3|wt)
}

// finishLen turns dst[start:] into a length-prefixed run by inserting the
// uvarint length at start. Writing the content first and shifting it once is
// cheaper than measuring every nested record twice.
func finishLen(dst []byte, start int) []byte {
	n := len(dst) - start
	k := uvarintLen(uint64(n))
	for range k {
		dst = append(dst, 0)
	}
	copy(dst[start+k:], dst[start:start+n])
	binary.PutUvarint(dst[start:], uint64(n))
	return dst
}

func appendVarintField(dst []byte, field, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return binary.AppendUvarint(appendKey(dst, field, wtVarint), v)
}

func appendStringField(dst []byte, field uint64, s string) []byte {
	if s == "" {
		return dst
	}
	dst = appendKey(dst, field, wtBytes)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// realMilli reports x in thousandths when the fixed-point form is used.
func realMilli(x float64) (int64, bool) {
	y := math.Round(x * realScale)
	if !(y > -realLimit && y < realLimit) { // also false for NaN
		return 0, false
	}
	return int64(y), true
}

// appendRealField writes a float record field: wire type varint for the
// fixed-point form, fixed64 for raw IEEE 754 bits. Zero is omitted.
func appendRealField(dst []byte, field uint64, x float64) []byte {
	if n, ok := realMilli(x); ok {
		return appendVarintField(dst, field, zigzag(n))
	}
	dst = appendKey(dst, field, wtFixed64)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
}

// appendRealValue writes a float column value: uvarint zigzag(n)<<1 for the
// fixed-point form, or the single byte 1 followed by 8 bytes of IEEE 754 bits.
func appendRealValue(dst []byte, x float64) ([]byte, bool) {
	if n, ok := realMilli(x); ok {
		return binary.AppendUvarint(dst, zigzag(n)<<1), n == 0
	}
	dst = append(dst, 1)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x)), false
}

func realFromMilli(n int64) float64 { return float64(n) / realScale }

// reader walks a byte slice; every read checks the remaining length.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) uvarint() (uint64, error) {
	// Fast path for the one-byte values that dominate columns.
	if r.off < len(r.b) && r.b[r.off] < 0x80 {
		v := r.b[r.off]
		r.off++
		return uint64(v), nil
	}
	v, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		if k == 0 {
			return 0, fmt.Errorf("varint at offset %d: truncated: %w", r.off, ErrMalformed)
		}
		return 0, fmt.Errorf("varint at offset %d: overflows 64 bits: %w", r.off, ErrMalformed)
	}
	r.off += k
	return v, nil
}

func (r *reader) fixed64() (uint64, error) {
	if len(r.b)-r.off < 8 {
		return 0, fmt.Errorf("fixed64 at offset %d: truncated: %w", r.off, ErrMalformed)
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

// bytes reads a uvarint length and that many bytes, checked against the
// remaining input before anything is sliced.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, fmt.Errorf("length %d at offset %d, %d bytes left: %w", n, r.off, len(r.b)-r.off, ErrMalformed)
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// key reads a field key; field number 0 and wire types other than 0, 1, 2
// are malformed.
func (r *reader) key() (uint64, uint64, error) {
	k, err := r.uvarint()
	if err != nil {
		return 0, 0, err
	}
	field, wt := k>>3, k&7
	if field == 0 || wt > wtBytes {
		return 0, 0, fmt.Errorf("field key %#x at offset %d: %w", k, r.off, ErrMalformed)
	}
	return field, wt, nil
}

// skip steps over the value of an unknown field.
func (r *reader) skip(wt uint64) error {
	var err error
	switch wt {
	case wtVarint:
		_, err = r.uvarint()
	case wtFixed64:
		_, err = r.fixed64()
	case wtBytes:
		_, err = r.bytes()
	}
	return err
}

func wantWT(field, wt, want uint64) error {
	if wt != want {
		return fmt.Errorf("field %d has wire type %d, want %d: %w", field, wt, want, ErrMalformed)
	}
	return nil
}

// real reads a float record field of either wire type.
func (r *reader) real(wt uint64) (float64, error) {
	switch wt {
	case wtVarint:
		u, err := r.uvarint()
		if err != nil {
			return 0, err
		}
		n := unzigzag(u)
		if n <= -realLimit || n >= realLimit {
			return 0, fmt.Errorf("fixed-point value %d out of range: %w", n, ErrMalformed)
		}
		return realFromMilli(n), nil
	case wtFixed64:
		u, err := r.fixed64()
		return canonReal(math.Float64frombits(u)), err
	}
	return 0, fmt.Errorf("float field with wire type %d: %w", wt, ErrMalformed)
}

// realValue reads one float column value (see appendRealValue).
func (r *reader) realValue() (float64, error) {
	u, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if u&1 == 0 {
		n := unzigzag(u >> 1)
		if n <= -realLimit || n >= realLimit {
			return 0, fmt.Errorf("fixed-point value %d out of range: %w", n, ErrMalformed)
		}
		return realFromMilli(n), nil
	}
	if u != 1 {
		return 0, fmt.Errorf("float value tag %d: %w", u, ErrMalformed)
	}
	b, err := r.fixed64()
	return canonReal(math.Float64frombits(b)), err
}

// canonReal rounds a float that came as IEEE 754 bits but lies in the
// fixed-point range to thousandths, as if the writer had used fixed-point
// (which a conforming writer must), so every decoded value re-encodes to the
// same bytes and decodes back to itself.
func canonReal(x float64) float64 {
	if n, ok := realMilli(x); ok {
		return realFromMilli(n)
	}
	return x
}

// --- small messages ---------------------------------------------------------

// Field numbers of the small messages. Numbers are never reused.
const (
	helloNode         = 1
	helloAgentVersion = 2
	helloBootID       = 3
	helloSpoolID      = 4
	helloCapability   = 5 // repeated

	welcomeConsumerVersion = 1
	welcomeLastSeq         = 2

	ackSeq = 1
)

func appendHello(dst []byte, m *Hello) ([]byte, error) {
	for _, f := range []struct {
		n uint64
		s string
	}{{helloNode, m.Node}, {helloAgentVersion, m.AgentVersion}, {helloBootID, m.BootID}, {helloSpoolID, m.SpoolID}} {
		s, err := encString(f.s)
		if err != nil {
			return dst, err
		}
		dst = appendStringField(dst, f.n, s)
	}
	for _, c := range m.Capabilities {
		s, err := encString(c)
		if err != nil {
			return dst, err
		}
		// Written even when empty: the list's length is part of the value.
		dst = appendKey(dst, helloCapability, wtBytes)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst, nil
}

func appendWelcome(dst []byte, m *Welcome) ([]byte, error) {
	s, err := encString(m.ConsumerVersion)
	if err != nil {
		return dst, err
	}
	dst = appendStringField(dst, welcomeConsumerVersion, s)
	return appendVarintField(dst, welcomeLastSeq, m.LastSeq), nil
}

func appendAck(dst []byte, m *Ack) []byte {
	return appendVarintField(dst, ackSeq, m.Seq)
}

// once rejects a second occurrence of a known non-repeated field (1..max).
func once(seen *uint64, f, max uint64) error {
	if f > max {
		return nil
	}
	if *seen&(1<<f) != 0 {
		return fmt.Errorf("field %d repeated: %w", f, ErrMalformed)
	}
	*seen |= 1 << f
	return nil
}

func decodeHello(body []byte) (*Hello, error) {
	m := new(Hello)
	r := reader{b: body}
	var seen uint64
	for !r.done() {
		f, wt, err := r.key()
		if err != nil {
			return nil, err
		}
		if err := once(&seen, f, helloSpoolID); err != nil {
			return nil, err
		}
		var dst *string
		switch f {
		case helloNode:
			dst = &m.Node
		case helloAgentVersion:
			dst = &m.AgentVersion
		case helloBootID:
			dst = &m.BootID
		case helloSpoolID:
			dst = &m.SpoolID
		case helloCapability:
			if len(m.Capabilities) >= maxCapabilities {
				return nil, fmt.Errorf("more than %d capabilities: %w", maxCapabilities, ErrTooBig)
			}
		default:
			if err := r.skip(wt); err != nil {
				return nil, err
			}
			continue
		}
		if err := wantWT(f, wt, wtBytes); err != nil {
			return nil, err
		}
		b, err := r.bytes()
		if err != nil {
			return nil, err
		}
		if len(b) > MaxStringBytes {
			return nil, fmt.Errorf("string of %d bytes: %w", len(b), ErrTooBig)
		}
		if dst != nil {
			*dst = string(b)
		} else {
			m.Capabilities = append(m.Capabilities, string(b))
		}
	}
	return m, nil
}

func decodeWelcome(body []byte) (*Welcome, error) {
	m := new(Welcome)
	r := reader{b: body}
	var seen uint64
	for !r.done() {
		f, wt, err := r.key()
		if err != nil {
			return nil, err
		}
		if err := once(&seen, f, welcomeLastSeq); err != nil {
			return nil, err
		}
		switch f {
		case welcomeConsumerVersion:
			if err := wantWT(f, wt, wtBytes); err != nil {
				return nil, err
			}
			b, err := r.bytes()
			if err != nil {
				return nil, err
			}
			if len(b) > MaxStringBytes {
				return nil, fmt.Errorf("string of %d bytes: %w", len(b), ErrTooBig)
			}
			m.ConsumerVersion = string(b)
		case welcomeLastSeq:
			if err := wantWT(f, wt, wtVarint); err != nil {
				return nil, err
			}
			if m.LastSeq, err = r.uvarint(); err != nil {
				return nil, err
			}
		default:
			if err := r.skip(wt); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func decodeAck(body []byte) (*Ack, error) {
	m := new(Ack)
	r := reader{b: body}
	var seen uint64
	for !r.done() {
		f, wt, err := r.key()
		if err != nil {
			return nil, err
		}
		if err := once(&seen, f, ackSeq); err != nil {
			return nil, err
		}
		if f != ackSeq {
			if err := r.skip(wt); err != nil {
				return nil, err
			}
			continue
		}
		if err := wantWT(f, wt, wtVarint); err != nil {
			return nil, err
		}
		if m.Seq, err = r.uvarint(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	encoderPool = sync.Pool{New: func() any { return newEncoder() }}
	decoderPool = sync.Pool{New: func() any { return new(decoder) }}
)
