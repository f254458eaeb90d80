package wire

import "errors"

// Codec turns messages into WebSocket message payloads and back. Every batch
// is encoded self-contained (no state carried between messages), so a spooled
// batch can be replayed on any later connection; compression across messages
// is left to permessage-deflate.
type Codec interface {
	Subprotocol() string
	// Append appends the encoding of m to dst.
	Append(dst []byte, m Message) ([]byte, error)
	// Decode parses one whole message. It never panics and checks every
	// length against the remaining input and the package limits before
	// allocating; errors wrap ErrMalformed, ErrTooBig or ErrUnknownType.
	Decode(src []byte) (Message, error)
}

var (
	// ErrMalformed reports input that does not follow SPEC.md; the
	// connection is closed with CloseProtocolError.
	ErrMalformed = errors.New("malformed message")
	// ErrTooBig reports input over a limit; the connection is closed with
	// CloseMessageTooBig.
	ErrTooBig = errors.New("message over limit")
	// ErrUnknownType reports a well-formed message of a type this version
	// does not know; readers skip such messages and keep the connection.
	ErrUnknownType = errors.New("unknown message type")
)

// CodecFor returns the codec of a negotiated subprotocol.
func CodecFor(subprotocol string) (Codec, bool) {
	switch subprotocol {
	case SubprotocolBinary:
		return Binary, true
	case SubprotocolJSON:
		return JSON, true
	}
	return nil, false
}
