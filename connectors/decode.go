package connectors

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/transform"

	"github.com/firmbridge/firmbridge"
)

// PayloadText returns the provider's record as text. A JSON object payload
// is returned as is. A JSON string payload is unquoted; when the envelope
// says PayloadEncoding "base64", the string is base64 and its bytes are
// decoded from Charset: "gb18030", "gbk", "gb2312" (all decoded as GB18030,
// their superset) or "utf-8". Without a declared charset, valid UTF-8 is
// taken as UTF-8 and anything else as GB18030. A UTF-8 byte-order mark is
// dropped. Failures are *firmbridge.Reject with RejectInvalidEncoding or
// RejectInvalidPayload.
func PayloadText(env firmbridge.Envelope) (string, error) {
	raw := bytes.TrimSpace(env.Payload)
	if len(raw) == 0 || string(raw) == "null" {
		return "", &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: "payload", Message: "payload is required"}
	}
	enc := strings.ToLower(strings.TrimSpace(env.PayloadEncoding))
	if raw[0] != '"' {
		if enc != "" {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload",
				Message: fmt.Sprintf("payload_encoding %q needs the payload as a JSON string", env.PayloadEncoding)}
		}
		if raw[0] != '{' || !json.Valid(raw) {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload",
				Message: "payload is neither a JSON object nor a JSON string"}
		}
		return string(raw), nil
	}
	if enc == "base64" {
		// Base64 text has no escapes: decoded from the literal's bytes, it
		// needs no string of its own.
		if body, ok := plainJSONBody(raw); ok {
			return decodeBase64Text(body, env.Charset)
		}
	}
	s, ok := plainJSONString(raw)
	if !ok {
		s, ok = unquoteSimple(raw)
	}
	if !ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload", Message: "payload is not a valid JSON string"}
		}
	}
	switch enc {
	case "":
		return strings.TrimPrefix(s, "\ufeff"), nil
	case "base64":
	default:
		return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload_encoding",
			Message: fmt.Sprintf("payload_encoding %q is not supported (want base64 or none)", env.PayloadEncoding)}
	}
	return decodeBase64Text([]byte(s), env.Charset)
}

// decodeBase64Text decodes base64 text (standard, or unpadded when that
// fails) and then its bytes from charset. The decoded bytes go to a pooled
// buffer: DecodeCharset copies what it keeps into a new string.
func decodeBase64Text(text []byte, charset string) (string, error) {
	text = bytes.TrimSpace(text)
	bp := byteBufs.Get().(*[]byte)
	defer putByteBuf(bp)
	b, ok := decodeBase64(*bp, base64.StdEncoding, text)
	if !ok {
		if b, ok = decodeBase64(*bp, base64.RawStdEncoding, bytes.TrimRight(text, "=")); !ok {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload is not valid base64"}
		}
	}
	*bp = b
	return DecodeCharset(b, charset)
}

// decodeBase64 decodes src into buf, grown as needed, as enc.DecodeString
// would.
func decodeBase64(buf []byte, enc *base64.Encoding, src []byte) ([]byte, bool) {
	n := enc.DecodedLen(len(src))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	n, err := enc.Decode(buf[:n], src)
	return buf[:n], err == nil
}

// byteBufs pools scratch buffers for decoded payload bytes.
var byteBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBuf keeps an unusually large payload's buffer out of the pool.
const maxPooledBuf = 64 << 10

func putByteBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		*bp = (*bp)[:0]
		byteBufs.Put(bp)
	}
}

// plainJSONString returns the text of a JSON string literal without
// escapes, control bytes or invalid UTF-8, whose text is its bytes; other
// literals are for encoding/json.
func plainJSONString(raw []byte) (string, bool) {
	body, ok := plainJSONBody(raw)
	if !ok {
		return "", false
	}
	return string(body), true
}

// plainJSONBody is plainJSONString without the copy.
func plainJSONBody(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(body) {
		return nil, false
	}
	return body, true
}

// unquoteSimple unquotes a JSON string literal of valid UTF-8 without
// control bytes whose escapes are the one-letter ones or \u escapes outside
// the surrogates, as encoding/json does; other literals are for
// encoding/json (FuzzUnquoteSimple checks both agree). CSV lines with
// quoted fields arrive as such literals (\"1,234.56\").
func unquoteSimple(raw []byte) (string, bool) {
	// plainJSON: valid UTF-8, no control bytes, no surrogate escapes.
	if len(raw) < 2 || raw[len(raw)-1] != '"' || !plainJSON(raw) {
		return "", false
	}
	s := jsonScan{b: raw}
	if _, _, _, ok := s.str(); !ok || s.i != len(raw) {
		return "", false
	}
	var buf [512]byte
	out, ok := appendUnescaped(buf[:0], raw[1:len(raw)-1])
	return string(out), ok
}

// DecodeCharset decodes b from the named character set to UTF-8 (see
// PayloadText for the names and the rule for an undeclared charset).
func DecodeCharset(b []byte, charset string) (string, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(charset)), "-", "") {
	case "":
		if utf8.Valid(b) {
			return string(b), nil
		}
		return decodeGB18030(b)
	case "utf8":
		if !utf8.Valid(b) {
			return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload declared UTF-8 is not valid UTF-8"}
		}
		return string(b), nil
	case "gb18030", "gbk", "gb2312", "cp936", "euccn":
		return decodeGB18030(b)
	}
	return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "charset",
		Message: fmt.Sprintf("charset %q is not supported (want utf-8, gb18030 or gbk)", charset)}
}

// decodeGB18030 is decodeGB18030Ref (in the tests) with a pooled decoder and output
// buffer: a new decoder and its buffers per record were a tenth of a VAT
// return's CPU. FuzzDecodeGB18030 checks that both agree.
func decodeGB18030(b []byte) (string, error) {
	if ascii(b) { // GB18030 decodes every byte below 0x80 to itself
		return string(b), nil
	}
	d := gbDecoders.Get().(*gbDecoder)
	defer d.put()
	// transform.Append resets the decoder and grows the buffer as
	// transform.Bytes, which Decoder.Bytes uses, would.
	out, _, err := transform.Append(d.dec, d.out[:0], b)
	d.out = out
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidEncoding, Field: "payload", Message: "payload is not valid GB18030"}
	}
	return string(out), nil
}

type gbDecoder struct {
	dec *encoding.Decoder
	out []byte
}

var gbDecoders = sync.Pool{New: func() any {
	return &gbDecoder{dec: simplifiedchinese.GB18030.NewDecoder(), out: make([]byte, 0, 512)}
}}

func (d *gbDecoder) put() {
	if cap(d.out) <= maxPooledBuf {
		gbDecoders.Put(d)
	}
}

// ascii reports whether every byte of b is below 0x80.
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// EncodeGB18030 encodes UTF-8 text as GB18030, the way legacy exports are
// written. It is the inverse of DecodeCharset(b, "gb18030").
func EncodeGB18030(s string) ([]byte, error) {
	return simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(s))
}

// Fields is one provider record as named values, whatever its format. Names
// are matched after Fold and lower-casing, so "USCC", "ｕｓｃｃ" and " uscc "
// are the same field. Values are raw strings as sent (numbers in a JSON
// object keep their literal text; null is the empty string). A record has
// a dozen fields or so: a slice searched in order beats a map per record.
type Fields struct {
	fields []field
}

type field struct {
	key   string // fieldKey(name)
	name  string // as the provider wrote it
	value string
	raw   json.RawMessage // the JSON text of a JSON value, unless quoted
	// quoted marks a JSON string: its raw text is made on demand by Raw.
	quoted bool
}

// set adds a field or, when the record repeats a name, replaces its value
// where it first appeared (the last value wins, as in encoding/json).
func (f *Fields) set(name, value string, raw json.RawMessage, quoted bool) {
	f.setKeyed(fieldKey(name), name, value, raw, quoted)
}

func (f *Fields) setKeyed(key, name, value string, raw json.RawMessage, quoted bool) {
	f.setKeyedAt(key, name, value, raw, quoted)
}

// setAt is set, returning the index of the field set.
func (f *Fields) setAt(name, value string, raw json.RawMessage, quoted bool) int {
	return f.setKeyedAt(fieldKey(name), name, value, raw, quoted)
}

func (f *Fields) setKeyedAt(key, name, value string, raw json.RawMessage, quoted bool) int {
	for i := range f.fields {
		if f.fields[i].key == key {
			f.fields[i].value, f.fields[i].raw, f.fields[i].quoted = value, raw, quoted
			return i
		}
	}
	f.fields = append(f.fields, field{key: key, name: name, value: value, raw: raw, quoted: quoted})
	return len(f.fields) - 1
}

func (f Fields) find(name string) *field {
	key := fieldKey(name)
	for i := range f.fields {
		if f.fields[i].key == key {
			return &f.fields[i]
		}
	}
	return nil
}

// fieldKey is the name a field is matched by. Connectors look fields up by
// constant names that are nearly always folded and lower-case already, so
// that case costs no allocation.
func fieldKey(name string) string {
	if foldedLower(name) {
		return name
	}
	return strings.ToLower(Fold(name))
}

// foldedLower reports whether name is printable ASCII without upper-case
// letters or spaces, or plain UTF-8 text of ideographs and such that Fold
// and strings.ToLower leave alone.
func foldedLower(name string) bool {
	// Byte by byte over ASCII and CJK ideographs, the names connectors
	// look up; anything else as foldedLowerRef does.
	for i := 0; i < len(name); {
		c := name[i]
		switch {
		case c < utf8.RuneSelf:
			if c <= ' ' || c == 0x7f || ('A' <= c && c <= 'Z') {
				return false
			}
			i++
		case cjkAt(name, i):
			i += 3
		default:
			return foldedLowerRef(name)
		}
	}
	return true
}

// foldedLowerRef is foldedLower decoding every rune.
func foldedLowerRef(name string) bool {
	for _, r := range name {
		switch {
		case r < 0x80:
			if r <= ' ' || r == 0x7f || ('A' <= r && r <= 'Z') {
				return false
			}
		case r >= 0x4e00 && r <= 0x9fff:
			// CJK ideographs, the names of Chinese exports: no case, no width.
		default:
			return folded(name) && strings.ToLower(name) == name
		}
	}
	return true
}

// Lookup returns the value of the first of names the record has, and the
// name that matched. ok is false when none is present at all.
func (f Fields) Lookup(names ...string) (value, name string, ok bool) {
	for _, n := range names {
		if fl := f.find(n); fl != nil {
			return fl.value, n, true
		}
	}
	return "", "", false
}

// Get returns the value of the first of names the record has, or "".
func (f Fields) Get(names ...string) string {
	v, _, _ := f.Lookup(names...)
	return v
}

// Raw returns the JSON value of a field of a JSON record.
func (f Fields) Raw(names ...string) (json.RawMessage, bool) {
	for _, n := range names {
		fl := f.find(n)
		switch {
		case fl == nil:
			continue
		case fl.quoted:
			b, err := json.Marshal(fl.value)
			return b, err == nil
		case fl.raw != nil:
			return fl.raw, true
		}
		return json.RawMessage(fl.value), true
	}
	return nil, false
}

// Names lists the record's field names in their original order.
func (f Fields) Names() []string {
	out := make([]string, len(f.fields))
	for i, fl := range f.fields {
		out[i] = fl.name
	}
	return out
}

// NewFields builds a record from names and values (for tests and tools).
func NewFields(names, values []string) Fields {
	f := Fields{fields: make([]field, 0, len(names))}
	for i, n := range names {
		v := ""
		if i < len(values) {
			v = values[i]
		}
		f.set(n, v, nil, false)
	}
	return f
}

// DecodeRecord decodes an envelope's payload into Fields: a JSON object
// (also when double-encoded inside a JSON string), or one CSV line read
// with the envelope's Header. When Header is empty and the payload holds
// two lines, the first is taken as the header. A CSV line must have as many
// fields as the header.
func DecodeRecord(env firmbridge.Envelope) (Fields, error) {
	text, err := PayloadText(env)
	if err != nil {
		return Fields{}, err
	}
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") {
		return decodeJSONObject(t)
	}
	return decodeCSVLine(text, env.Header)
}

func decodeJSONObject(text string) (Fields, error) {
	if f, ok := decodeJSONObjectFast(text); ok {
		return f, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return Fields{}, invalidPayload("payload is not a JSON object")
	}
	var f Fields
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Fields{}, invalidPayload("payload is not a valid JSON object")
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return Fields{}, invalidPayload("payload is not a valid JSON object")
		}
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '"' {
			f.set(name, jsonScalar(v), nil, true)
		} else {
			f.set(name, jsonScalar(v), v, false)
		}
	}
	if _, err := dec.Token(); err != nil {
		return Fields{}, invalidPayload("payload is not a valid JSON object")
	}
	if dec.More() {
		return Fields{}, invalidPayload("payload has data after the JSON object")
	}
	return f, nil
}

// jsonScalar renders a JSON value as the string a CSV field would hold.
func jsonScalar(v json.RawMessage) string {
	t := bytes.TrimSpace(v)
	switch {
	case len(t) == 0 || string(t) == "null":
		return ""
	case t[0] == '"':
		var s string
		if json.Unmarshal(t, &s) == nil {
			return s
		}
	}
	return string(t)
}

func decodeCSVLine(text, header string) (Fields, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	if strings.TrimSpace(header) == "" {
		h, rest, ok := strings.Cut(strings.TrimLeft(text, "\r\n"), "\n")
		if !ok {
			return Fields{}, &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: "header",
				Message: "a CSV payload needs the file's header line in header"}
		}
		header, text = h, rest
	}
	h, err := csvHeader(header)
	if err != nil {
		return Fields{}, err
	}
	// Most lines have a few dozen fields at most: their values are
	// gathered on the stack and copied into the record's fields.
	var buf [32]string
	values, err := appendCSVLine(buf[:0], text)
	if err != nil {
		return Fields{}, invalidPayload("payload is not one CSV line: " + err.Error())
	}
	if len(values) != len(h.names) {
		return Fields{}, invalidPayload(fmt.Sprintf("CSV line has %d fields, the header has %d", len(values), len(h.names)))
	}
	f := Fields{fields: make([]field, 0, len(h.names))}
	if h.distinct { // nothing to replace: setKeyed would append each in turn
		for i, v := range values {
			f.fields = append(f.fields, field{key: h.keys[i], name: h.names[i], value: v})
		}
		return f, nil
	}
	for i, v := range values {
		f.setKeyed(h.keys[i], h.names[i], v, nil, false)
	}
	return f, nil
}

// parsedHeader is a header line's field names, folded, and their keys.
// distinct says no two keys are the same, as in every honest header.
type parsedHeader struct {
	names, keys []string
	distinct    bool
}

// csvHeaders caches parsed header lines: every record of a provider file
// carries the same header, and parsing it anew was a tenth of ingest's CPU.
// It stops growing at maxCachedHeaders, which no honest feed reaches.
var (
	csvHeaders       sync.Map // header line → parsedHeader
	csvHeadersCached atomic.Int64
)

const maxCachedHeaders = 1024

// csvHeader parses a header line. The result is shared: callers must not
// change it.
func csvHeader(header string) (parsedHeader, error) {
	if h, ok := csvHeaders.Load(header); ok {
		return h.(parsedHeader), nil
	}
	names, err := readCSVLine(strings.TrimPrefix(header, "\ufeff"))
	if err != nil {
		return parsedHeader{}, &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "header", Message: "header is not a CSV line: " + err.Error()}
	}
	h := parsedHeader{names: names, keys: make([]string, len(names))}
	for i := range names {
		names[i] = Fold(names[i])
		h.keys[i] = fieldKey(names[i])
	}
	h.distinct = true
	for i := range h.keys {
		if slices.Contains(h.keys[:i], h.keys[i]) {
			h.distinct = false
		}
	}
	if csvHeadersCached.Load() < maxCachedHeaders {
		if _, loaded := csvHeaders.LoadOrStore(header, h); !loaded {
			csvHeadersCached.Add(1)
		}
	}
	return h, nil
}

var lineReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

func readCSVLine(s string) ([]string, error) {
	return appendCSVLine(nil, s)
}

// appendCSVLine is readCSVLine appending the fields to dst, which it may
// return (grown) when it splits the line itself.
func appendCSVLine(dst []string, s string) ([]string, error) {
	s = strings.TrimRight(s, "\r\n")
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty line")
	}
	// Without quotes or line breaks a CSV line is its commas; encoding/csv
	// would read it the same, at the cost of two 4 KiB buffers.
	if !strings.ContainsAny(s, "\"\r\n") {
		return splitCommas(dst, s), nil
	}
	// Quoted amounts ("1,234.56") are common; a line of plain quoted and
	// unquoted fields is split here too, anything unusual is left to
	// encoding/csv (FuzzSplitQuotedCSV checks both agree).
	if !strings.ContainsAny(s, "\r\n") {
		if rec, ok := appendQuotedCSV(dst, s); ok {
			return rec, nil
		}
	}
	// csv.NewReader takes a *bufio.Reader as it is, so a pooled one spares
	// the 4 KiB buffer it would allocate for every line.
	br := lineReaders.Get().(*bufio.Reader)
	defer lineReaders.Put(br)
	br.Reset(strings.NewReader(s))
	r := csv.NewReader(br)
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	rec, err := r.Read()
	if err != nil {
		return nil, err
	}
	if _, err := r.Read(); err == nil {
		return nil, errors.New("more than one line")
	}
	return rec, nil
}

// appendQuotedCSV splits one CSV line without line breaks whose fields are
// either unquoted without a quote in them or quoted from start to end
// ("" standing for a quote), as encoding/csv reads it, appending the
// fields to out. It reports false for anything else (a quote inside an
// unquoted field, text after a closing quote, an unterminated quote),
// which encoding/csv with LazyQuotes reads in its own way.
func appendQuotedCSV(out []string, s string) ([]string, bool) {
	out = out[:0]
	for {
		var field string
		if len(s) > 0 && s[0] == '"' {
			rest := s[1:]
			var buf []byte
			for {
				i := strings.IndexByte(rest, '"')
				if i < 0 {
					return nil, false
				}
				if i+1 < len(rest) && rest[i+1] == '"' {
					buf = append(buf, rest[:i+1]...)
					rest = rest[i+2:]
					continue
				}
				if buf == nil {
					field = rest[:i]
				} else {
					field = string(append(buf, rest[:i]...))
				}
				s = rest[i+1:]
				break
			}
			if len(s) > 0 && s[0] != ',' {
				return nil, false
			}
		} else {
			i := strings.IndexByte(s, ',')
			if i < 0 {
				i = len(s)
			}
			field = s[:i]
			if strings.IndexByte(field, '"') >= 0 {
				return nil, false
			}
			s = s[i:]
		}
		out = append(out, field)
		if s == "" {
			return out, true
		}
		s = s[1:] // the comma
	}
}

// splitCommas appends the fields of strings.Split(s, ",") to dst[:0].
func splitCommas(dst []string, s string) []string {
	dst = dst[:0]
	for {
		i := strings.IndexByte(s, ',')
		if i < 0 {
			return append(dst, s)
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
}

func invalidPayload(msg string) *firmbridge.Reject {
	return &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload", Message: msg}
}
