package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// JSON is the "sysmon.v1+json" codec: one JSON object per WebSocket text or
// binary message, {"type": "hello"|"welcome"|"batch"|"ack", ...fields}, with
// the field names of the types' json tags, times in RFC 3339 with
// nanoseconds and floats at full precision (SPEC.md section 7). Unknown
// fields are ignored; an unknown type fails with ErrUnknownType, which
// readers skip. Append validates first, like the binary codec, and replaces
// invalid UTF-8 with U+FFFD (encoding/json's behaviour, which the binary
// codec copies so both carry the same text).
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Subprotocol() string { return SubprotocolJSON }

var jsonTypeNames = map[MessageType]string{
	TypeHello: "hello", TypeWelcome: "welcome", TypeBatch: "batch", TypeAck: "ack",
}

// envelope is the JSON framing: the type tag plus the message's own fields.
type envelope struct {
	Type string `json:"type"`
}

func (jsonCodec) Append(dst []byte, m Message) ([]byte, error) {
	if isNil(m) {
		return dst, fmt.Errorf("encode json: nil message: %w", ErrMalformed)
	}
	name, ok := jsonTypeNames[TypeOf(m)]
	if !ok {
		return dst, fmt.Errorf("encode json: unknown message type %d: %w", TypeOf(m), ErrMalformed)
	}
	if err := validate(m, true); err != nil {
		return dst, fmt.Errorf("encode json %s: %w", name, err)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return dst, fmt.Errorf("encode json %s: %w", name, err)
	}
	start := len(dst)
	dst = append(dst, `{"type":"`...)
	dst = append(dst, name...)
	dst = append(dst, '"')
	if len(body) > 2 { // body is an object: splice its fields after the tag
		dst = append(dst, ',')
		dst = append(dst, body[1:]...)
	} else {
		dst = append(dst, '}')
	}
	if n := len(dst) - start; n > MaxMessageBytes {
		return dst[:start], fmt.Errorf("encode json %s: %d bytes: %w", name, n, ErrTooBig)
	}
	return dst, nil
}

func (jsonCodec) Decode(src []byte) (Message, error) {
	if len(src) > MaxMessageBytes {
		return nil, fmt.Errorf("decode json: %d bytes: %w", len(src), ErrTooBig)
	}
	// encoding/json allocates every object before Validate can count rows,
	// so bound the objects up front: a 4 MiB message of empty rows would
	// otherwise unfold into hundreds of megabytes. '{' inside strings only
	// over-counts, which errs on the safe side.
	if n := bytes.Count(src, []byte{'{'}); n > MaxRowsPerMessage {
		return nil, fmt.Errorf("decode json: %d objects: %w", n, ErrTooBig)
	}
	var env envelope
	if name, ok := leadingType(src); ok {
		env.Type = name // full validity is checked by the Unmarshal below
	} else if err := json.Unmarshal(src, &env); err != nil {
		return nil, fmt.Errorf("decode json: %v: %w", err, ErrMalformed)
	}
	var m Message
	switch env.Type {
	case "hello":
		m = new(Hello)
	case "welcome":
		m = new(Welcome)
	case "batch":
		m = new(Batch)
	case "ack":
		m = new(Ack)
	case "":
		return nil, fmt.Errorf("decode json: missing \"type\": %w", ErrMalformed)
	default:
		return nil, fmt.Errorf("decode json: type %q: %w", env.Type, ErrUnknownType)
	}
	if err := json.Unmarshal(src, m); err != nil {
		return nil, fmt.Errorf("decode json %s: %v: %w", env.Type, err, ErrMalformed)
	}
	if err := Validate(m); err != nil {
		return nil, fmt.Errorf("decode json %s: %w", env.Type, err)
	}
	return m, nil
}

// leadingType reads the type of a message that starts {"type":"NAME", as
// every sysmon writer puts it, sparing a second parse of the whole message
// just to find the type. Anything else takes the general path.
func leadingType(src []byte) (string, bool) {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(src, []byte(prefix)) {
		return "", false
	}
	rest := src[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || end > 16 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	switch name := string(rest[:end]); name {
	case "hello", "welcome", "batch", "ack":
		return name, true
	}
	return "", false
}
