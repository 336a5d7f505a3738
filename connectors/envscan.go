package connectors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/firmbridge/firmbridge"
)

// scanEnvelope is decodeEnvelopeFast in one strict pass over the bytes,
// without building a tree of values: fastjson validated the whole message,
// parsed it, and was walked again for the envelope and the payload, about
// a third of normalizing a record. It reports false, and leaves the message
// to decodeEnvelopeFast, wherever it is unsure of giving the same result:
// escapes in a key or in an envelope field, a schema_version that is not a
// number, a null payload, keys that only case-fold to an envelope field,
// deep nesting, or anything that is not valid JSON. FuzzScanEnvelope checks
// that it agrees with decodeEnvelopeFast whenever it reports true.
func scanEnvelope(b []byte, env *firmbridge.Envelope, fields *Fields) (ok, fieldsSet bool) {
	if !plainJSON(b) {
		return false, false
	}
	s := jsonScan{b: b}
	s.skipSpace()
	if !s.consume('{') {
		return false, false
	}
	var (
		recordID, uscc, payload scanned
		payloadKind             byte
		payloadMembers          int
		payloadSpaced           bool
	)
	s.skipSpace()
	if !s.consume('}') {
		for {
			ks, ke, escaped, ok := s.str()
			if !ok || escaped {
				return false, false
			}
			s.skipSpace()
			if !s.consume(':') {
				return false, false
			}
			s.skipSpace()
			vs := s.i
			s.spaced = false
			v, ok := s.value(0)
			if !ok {
				return false, false
			}
			raw := b[vs:s.i]
			switch string(b[ks:ke]) {
			case "record_id":
				ok = v.setString(&recordID, vs, s.i)
			case "uscc":
				ok = v.setString(&uscc, vs, s.i)
			case "source":
				ok = v.setInterned(&env.Source, raw)
			case "header":
				ok = v.setInterned(&env.Header, raw)
			case "payload_encoding":
				ok = v.setInterned(&env.PayloadEncoding, raw)
			case "charset":
				ok = v.setInterned(&env.Charset, raw)
			case "schema_version":
				// A number as SchemaVersion.UnmarshalJSON reads it.
				if v.kind != '0' {
					return false, false
				}
				n, err := strconv.ParseUint(string(raw), 10, 16)
				if err != nil {
					return false, false
				}
				env.SchemaVersion = firmbridge.SchemaVersion(n)
			case "observed_at":
				// UnmarshalText is UnmarshalJSON without the quotes.
				var t time.Time
				if v.kind != '"' || v.escaped || t.UnmarshalText(raw[1:len(raw)-1]) != nil {
					return false, false
				}
				env.ObservedAt = t
			case "payload":
				payload = scanned{vs, s.i, true}
				payloadKind, payloadMembers, payloadSpaced = v.kind, v.members, s.spaced
			default:
				// encoding/json also matches keys case-insensitively.
				for _, k := range envelopeKeys {
					if strings.EqualFold(k, string(b[ks:ke])) {
						return false, false
					}
				}
			}
			if !ok {
				return false, false
			}
			s.skipSpace()
			if s.consume('}') {
				break
			}
			if !s.consume(',') {
				return false, false
			}
			s.skipSpace()
		}
	}
	s.skipSpace()
	if s.i != len(b) || payload.set && payloadKind == 'n' {
		return false, false
	}
	if recordID.set || uscc.set {
		// One string for both, as fillEnvelope makes it.
		var buf [256]byte
		both := string(append(append(buf[:0], b[recordID.start:recordID.end]...), b[uscc.start:uscc.end]...))
		if recordID.set {
			env.RecordID = both[:recordID.end-recordID.start]
		}
		if uscc.set {
			env.USCC = both[recordID.end-recordID.start:]
		}
	}
	if !payload.set {
		return true, false
	}
	// The payload as fastjson marshals it: its text without the white
	// space between tokens.
	raw := b[payload.start:payload.end]
	if payloadSpaced {
		env.Payload = compactJSON(raw)
	} else {
		env.Payload = bytes.Clone(raw)
	}
	if fields == nil || payloadKind != '{' || strings.TrimSpace(env.PayloadEncoding) != "" {
		return true, false
	}
	f, ok := scanObjectFields(b, payload.start, payloadMembers)
	if !ok {
		return false, false
	}
	*fields = f
	return true, true
}

// scanned is where a string's text (without its quotes) lies in the
// message, once set.
type scanned struct {
	start, end int
	set        bool
}

// scannedValue describes a JSON value jsonScan read.
type scannedValue struct {
	kind    byte // '"' string, '{' object, '[' array, '0' number, 't', 'f', 'n' literals
	escaped bool // a string with escapes
	members int  // an object's members
}

// setString is stringBytes: null leaves dst as it is; a string without
// escapes sets it; anything else is for decodeEnvelopeFast.
func (v scannedValue) setString(dst *scanned, start, end int) bool {
	switch {
	case v.kind == 'n':
		return true
	case v.kind == '"' && !v.escaped:
		*dst = scanned{start + 1, end - 1, true}
		return true
	}
	return false
}

// setInterned is setInterned for a scanned value; raw is its JSON text.
func (v scannedValue) setInterned(dst *string, raw []byte) bool {
	switch {
	case v.kind == 'n':
		return true
	case v.kind == '"' && !v.escaped:
		*dst = envelopeStrings.intern(raw[1 : len(raw)-1])
		return true
	}
	return false
}

// scanObjectFields is objectFields for the object at b[start], which
// scanEnvelope validated and found to have members members.
func scanObjectFields(b []byte, start, members int) (Fields, bool) {
	p := jsonParsers.Get().(*jsonParser)
	defer jsonParsers.Put(p)
	f := Fields{fields: make([]field, 0, members)}
	s := jsonScan{b: b, i: start + 1}
	t := p.fieldText()
	var keyBuf [64]byte
	s.skipSpace()
	for !s.consume('}') {
		ks, ke, escaped, ok := s.str()
		if !ok {
			return Fields{}, false
		}
		key := b[ks:ke]
		if escaped {
			if key, ok = appendUnescaped(keyBuf[:0], key); !ok {
				return Fields{}, false
			}
		}
		name := jsonKeys.intern(key)
		s.skipSpace()
		s.consume(':')
		s.skipSpace()
		vs := s.i
		s.spaced = false
		v, ok := s.value(0)
		if !ok {
			return Fields{}, false
		}
		raw := b[vs:s.i]
		start := len(t.buf)
		switch v.kind {
		case '"':
			if v.escaped {
				if t.buf, ok = appendUnescaped(t.buf, raw[1:len(raw)-1]); !ok {
					return Fields{}, false
				}
			} else {
				t.buf = append(t.buf, raw[1:len(raw)-1]...)
			}
			t.set(f.setAt(name, "", nil, true), start)
		case 'n':
			t.set(f.setAt(name, "", jsonNull, false), -1)
		case '{', '[':
			var c []byte
			if s.spaced {
				c = compactJSON(raw)
			} else {
				c = bytes.Clone(raw)
			}
			t.set(f.setAt(name, string(c), c, false), -1)
		default: // numbers, true and false keep their literal text
			t.buf = append(t.buf, raw...)
			t.set(f.setAt(name, "", nil, false), start)
		}
		s.skipSpace()
		s.consume(',')
		s.skipSpace()
	}
	t.assign(&f)
	p.keepFieldText(t)
	return f, true
}

// maxScanDepth bounds how deep jsonScan follows nested values; deeper
// documents are left to fastjson and encoding/json.
const maxScanDepth = 64

// jsonScan reads JSON strictly (RFC 8259), from b[i] on. b passed
// plainJSON: no byte below 0x20 is left to find in its strings.
type jsonScan struct {
	b      []byte
	i      int
	spaced bool // white space between tokens was skipped since it was last cleared
}

func (s *jsonScan) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
			s.spaced = true
		default:
			return
		}
	}
}

// consume steps over c if it is next.
func (s *jsonScan) consume(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string literal and returns where its text lies and whether
// it holds escapes.
func (s *jsonScan) str() (start, end int, escaped, ok bool) {
	if !s.consume('"') {
		return 0, 0, false, false
	}
	start = s.i
	b := s.b
	for j := s.i; ; {
		j = quoteOrBackslash(b, j)
		switch {
		case j >= len(b):
			return 0, 0, false, false
		case b[j] == '"':
			s.i = j + 1
			return start, j, escaped, true
		}
		// An escape: check it and go on after it.
		if j+1 >= len(b) {
			return 0, 0, false, false
		}
		escaped = true
		switch b[j+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j += 2
		case 'u':
			if j+6 > len(b) || !isHex4(b[j+2:j+6]) {
				return 0, 0, false, false
			}
			j += 6
		default:
			return 0, 0, false, false
		}
	}
}

// quoteOrBackslash returns the index of the first quote or backslash in b
// from i on, or len(b). Strings are short: eight bytes at a time beats
// two calls to bytes.IndexByte (a zero byte borrows in x - 0x01…01 and was
// clear in its top bit).
func quoteOrBackslash(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^('"'*ones), x^('\\'*ones)
		if ((q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] == '"' || b[i] == '\\' {
			return i
		}
	}
	return i
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// value reads one JSON value, at most maxScanDepth-depth levels deep.
func (s *jsonScan) value(depth int) (scannedValue, bool) {
	if s.i >= len(s.b) {
		return scannedValue{}, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, escaped, ok := s.str()
		return scannedValue{kind: '"', escaped: escaped}, ok
	case c == '{':
		n, ok := s.object(depth + 1)
		return scannedValue{kind: '{', members: n}, ok
	case c == '[':
		return scannedValue{kind: '['}, s.array(depth + 1)
	case c == 't':
		return scannedValue{kind: 't'}, s.literal("true")
	case c == 'f':
		return scannedValue{kind: 'f'}, s.literal("false")
	case c == 'n':
		return scannedValue{kind: 'n'}, s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return scannedValue{kind: '0'}, s.number()
	}
	return scannedValue{}, false
}

func (s *jsonScan) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// object reads an object and returns how many members it has.
func (s *jsonScan) object(depth int) (int, bool) {
	if depth > maxScanDepth {
		return 0, false
	}
	s.i++ // {
	s.skipSpace()
	if s.consume('}') {
		return 0, true
	}
	for n := 1; ; n++ {
		if _, _, _, ok := s.str(); !ok {
			return 0, false
		}
		s.skipSpace()
		if !s.consume(':') {
			return 0, false
		}
		s.skipSpace()
		if _, ok := s.value(depth); !ok {
			return 0, false
		}
		s.skipSpace()
		if s.consume('}') {
			return n, true
		}
		if !s.consume(',') {
			return 0, false
		}
		s.skipSpace()
	}
}

func (s *jsonScan) array(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	s.i++ // [
	s.skipSpace()
	if s.consume(']') {
		return true
	}
	for {
		if _, ok := s.value(depth); !ok {
			return false
		}
		s.skipSpace()
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
}

// number reads a number as RFC 8259 writes it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = skipDigits(b, i)
	}
	s.i = i
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipDigits returns the index after the run of digits at b[i].
func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// appendUnescaped appends the text of a string literal's contents, which
// str accepted, to dst. Surrogate escapes (which plainJSON keeps away)
// report false.
func appendUnescaped(dst, s []byte) ([]byte, bool) {
	for {
		bs := bytes.IndexByte(s, '\\')
		if bs < 0 {
			return append(dst, s...), true
		}
		dst = append(dst, s[:bs]...)
		switch c := s[bs+1]; c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, err := strconv.ParseUint(string(s[bs+2:bs+6]), 16, 16)
			if err != nil || 0xd800 <= r && r < 0xe000 {
				return dst, false
			}
			dst = utf8.AppendRune(dst, rune(r))
			s = s[bs+6:]
			continue
		default: // " \ /
			dst = append(dst, c)
		}
		s = s[bs+2:]
	}
}

// compactJSON returns valid JSON without the white space between its
// tokens, as fastjson marshals a parsed value: what json.Compact writes.
func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return bytes.Clone(b) // not reached: jsonScan read b as valid JSON
	}
	return buf.Bytes()
}
