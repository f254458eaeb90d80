package pki

import (
	"crypto/sha1"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// NameHash computes openssl's X509_NAME_hash (the "subject_hash" of
// `openssl x509 -hash` and `openssl crl -hash`) of a DER-encoded name: the
// first four bytes, little-endian, of the SHA-1 of the name's canonical
// encoding. Directories of hashed links (<hash>.0 for certificates,
// <hash>.r0 for CRLs) are named with it; Erlang's ssl_crl_hash_dir, which
// the original consumer used, looks CRLs up by it.
func NameHash(rawName []byte) (uint32, error) {
	canon, err := canonicalName(rawName)
	if err != nil {
		return 0, err
	}
	sum := sha1.Sum(canon)
	return binary.LittleEndian.Uint32(sum[:4]), nil
}

// canonicalName reproduces openssl's x509_name_canon: every string value
// is converted to UTF-8, trimmed, its inner whitespace runs collapsed to one
// space and its ASCII letters lowered, re-encoded as UTF8String; each RDN is
// DER-encoded as a SET and the SETs are concatenated without the outer
// SEQUENCE.
func canonicalName(raw []byte) ([]byte, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return nil, fmt.Errorf("parse name: %w", err)
	}
	if len(rest) != 0 || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, errors.New("parse name: not a single SEQUENCE")
	}
	var out []byte
	body := seq.Bytes
	for len(body) > 0 {
		var set asn1.RawValue
		body, err = asn1.Unmarshal(body, &set)
		if err != nil {
			return nil, fmt.Errorf("parse RDN: %w", err)
		}
		if set.Tag != asn1.TagSet || !set.IsCompound {
			return nil, errors.New("parse RDN: not a SET")
		}
		var attrs [][]byte
		sb := set.Bytes
		for len(sb) > 0 {
			var atv struct {
				Type  asn1.ObjectIdentifier
				Value asn1.RawValue
			}
			sb, err = asn1.Unmarshal(sb, &atv)
			if err != nil {
				return nil, fmt.Errorf("parse attribute: %w", err)
			}
			val := atv.Value.FullBytes
			if s, ok := canonString(atv.Value); ok {
				val, err = asn1.MarshalWithParams(s, "utf8")
				if err != nil {
					return nil, fmt.Errorf("encode canonical value: %w", err)
				}
			}
			oid, err := asn1.Marshal(atv.Type)
			if err != nil {
				return nil, fmt.Errorf("encode attribute type: %w", err)
			}
			attrs = append(attrs, derTLV(0x30, append(oid, val...)))
		}
		// DER sorts the members of a SET OF by their encodings; openssl's
		// encoder does the same for multi-valued RDNs.
		sortDER(attrs)
		var members []byte
		for _, a := range attrs {
			members = append(members, a...)
		}
		out = append(out, derTLV(0x31, members)...)
	}
	return out, nil
}

// canonString decodes the string types that openssl canonicalises
// (ASN1_MASK_CANON) and applies its folding. Other types, VisibleString
// among them, are kept as is, as openssl does.
func canonString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	var s string
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString:
		if !utf8.Valid(v.Bytes) {
			return "", false
		}
		s = string(v.Bytes)
	case asn1.TagT61String:
		// openssl treats T61String as Latin-1.
		r := make([]rune, len(v.Bytes))
		for i, b := range v.Bytes {
			r[i] = rune(b)
		}
		s = string(r)
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
		}
		s = string(utf16.Decode(u))
	case 28: // UniversalString
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		r := make([]rune, len(v.Bytes)/4)
		for i := range r {
			r[i] = rune(binary.BigEndian.Uint32(v.Bytes[4*i:]))
		}
		s = string(r)
	default:
		return "", false
	}
	return foldSpaces(s), true
}

func isCSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
}

// foldSpaces is asn1_string_canon's byte loop: trim ASCII whitespace at
// both ends, collapse inner runs to one space, lower ASCII letters, copy
// non-ASCII bytes unchanged.
func foldSpaces(s string) string {
	b := []byte(s)
	for len(b) > 0 && isCSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isCSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	var sb strings.Builder
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c >= 0x80:
			sb.WriteByte(c)
			i++
		case isCSpace(c):
			sb.WriteByte(' ')
			for i < len(b) && isCSpace(b[i]) {
				i++
			}
		default:
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			sb.WriteByte(c)
			i++
		}
	}
	return sb.String()
}

func derTLV(tag byte, body []byte) []byte {
	n := len(body)
	var hdr []byte
	switch {
	case n < 0x80:
		hdr = []byte{tag, byte(n)}
	case n < 0x100:
		hdr = []byte{tag, 0x81, byte(n)}
	case n < 0x10000:
		hdr = []byte{tag, 0x82, byte(n >> 8), byte(n)}
	default:
		hdr = []byte{tag, 0x83, byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(hdr, body...)
}

func sortDER(v [][]byte) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && derLess(v[j], v[j-1]); j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

func derLess(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}
