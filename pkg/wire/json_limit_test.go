package wire

import (
	"bytes"
	"errors"
	"testing"
)

// TestJSONDecodeBoundsObjectsBeforeParsing: a message of a million empty rows
// is refused before encoding/json allocates them.
func TestJSONDecodeBoundsObjectsBeforeParsing(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"type":"batch","seq":1,"samples":[{"ts":"2026-12-03T10:00:00Z","procs":[`)
	for i := 0; i < MaxRowsPerMessage+1; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString(`]}]}`)
	if b.Len() > MaxMessageBytes {
		t.Fatalf("test message is %d bytes, over the message limit", b.Len())
	}
	_, err := JSON.Decode(b.Bytes())
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("got %v, want ErrTooBig", err)
	}
}
