package wire

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// seed adds every test vector with the given extension to the corpus.
func seed(f *testing.F, ext string) {
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*"+ext))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no %s vectors in %s: %v", ext, vectorDir, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// checkClass fails unless err wraps one of the codec's error classes.
func checkClass(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooBig) && !errors.Is(err, ErrUnknownType) {
		t.Fatalf("error outside the codec's classes: %v", err)
	}
}

// FuzzDecodeBinary: any input either fails with a classified error or decodes
// to a message that re-encodes canonically and survives both codecs intact.
func FuzzDecodeBinary(f *testing.F) {
	seed(f, ".bin")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Binary.Decode(b)
		if err != nil {
			checkClass(t, err)
			return
		}
		enc, err := Binary.Append(nil, m)
		if err != nil {
			t.Fatalf("re-encode of a decoded message: %v", err)
		}
		m2, err := Binary.Decode(enc)
		if err != nil {
			t.Fatalf("decode of a re-encoded message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("decode(encode(x)) != x:\n x %+v\n y %+v", m, m2)
		}
		if enc2, _ := Binary.Append(nil, m2); string(enc2) != string(enc) {
			t.Fatalf("encoding is not canonical")
		}
		js, err := JSON.Append(nil, m)
		if errors.Is(err, ErrTooBig) {
			return // JSON is several times larger
		}
		if err != nil {
			t.Fatalf("json encode of a decoded message: %v", err)
		}
		m3, err := JSON.Decode(js)
		if err != nil {
			t.Fatalf("json decode: %v", err)
		}
		if !reflect.DeepEqual(m, m3) {
			t.Fatalf("json round trip differs:\n x %+v\n y %+v", m, m3)
		}
	})
}

// FuzzDecodeJSON: any input either fails with a classified error or decodes
// to a message the binary codec carries to the same value, floats rounded to
// thousandths (SPEC.md, "Floats").
func FuzzDecodeJSON(f *testing.F) {
	seed(f, ".json")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := JSON.Decode(b)
		if err != nil {
			checkClass(t, err)
			return
		}
		bin, err := Binary.Append(nil, m)
		if err != nil {
			t.Fatalf("binary encode of a decoded json message: %v", err)
		}
		m2, err := Binary.Decode(bin)
		if err != nil {
			t.Fatalf("binary decode: %v", err)
		}
		if want := quantize(m); !reflect.DeepEqual(m2, want) {
			t.Fatalf("binary round trip differs:\n got  %+v\n want %+v", m2, want)
		}
	})
}
