package wire

// Binary is the "sysmon.v1" codec.
//
// TEMPORARY: until the compact codec of SPEC.md lands, it carries the JSON
// rendering under the binary subprotocol name so the rest of the system can
// be built against the Codec interface.
var Binary Codec = binaryCodec{}

type binaryCodec struct{}

func (binaryCodec) Subprotocol() string                          { return SubprotocolBinary }
func (binaryCodec) Append(dst []byte, m Message) ([]byte, error) { return JSON.Append(dst, m) }
func (binaryCodec) Decode(src []byte) (Message, error)           { return JSON.Decode(src) }
