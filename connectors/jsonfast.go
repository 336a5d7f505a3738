package connectors

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/firmbridge/firmbridge"
)

// Envelopes and JSON payloads are decoded with fastjson: one parse, no
// reflection, no per-field decoder state. encoding/json was three passes
// over every payload (validate, decode the envelope, decode the payload
// again) and most of ingest's CPU. encoding/json stays the reference:
// whatever the fast path is unsure of (control bytes, invalid UTF-8,
// surrogate escapes, keys that only case-fold to an envelope field, values
// of an unexpected type) or fails on is decoded again by encoding/json, so
// results and rejects are the same; FuzzDecodeEnvelope and
// FuzzDecodeJSONObject check that both agree.

// jsonParsers pools parsers with a scratch buffer for MarshalTo, whose
// destination always escapes: a buffer on the stack would be one more
// allocation per call.
var jsonParsers = sync.Pool{New: func() any { return new(jsonParser) }}

type jsonParser struct {
	fastjson.Parser
	buf   []byte
	spans []span
}

// scratch returns the parser's buffer, emptied; keep returns it after use.
func (p *jsonParser) scratch() []byte { return p.buf[:0] }

func (p *jsonParser) keep(b []byte) {
	if cap(b) <= 64<<10 {
		p.buf = b[:0]
	}
}

// plainJSON reports whether s holds only text the fast path decodes exactly
// as encoding/json does: valid UTF-8, no byte below 0x20 (encoding/json
// replaces invalid UTF-8 and refuses raw control bytes in strings; white
// space other than the space between tokens is rare enough to leave to it)
// and no \uD… escape (encoding/json and fastjson differ on lone surrogates).
func plainJSON[T string | []byte](s T) bool {
	// Eight bytes at a time: a byte below 0x20 borrows in x - 0x20…20
	// and was clear in its top bit (the "hasless" bit trick).
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if (x-0x2020202020202020)&^x&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x20 {
			return false
		}
	}
	switch s := any(s).(type) {
	case string:
		return !surrogateEscape(s, strings.Index) && utf8.ValidString(s)
	case []byte:
		return !surrogateEscape(s, bytes.Index) && utf8.Valid(s)
	}
	return false
}

// surrogateEscape reports whether s holds a \uD… escape, looking for
// backslash-u with index (strings.Index or bytes.Index, which are fast).
func surrogateEscape[T string | []byte](s T, index func(s, sep T) int) bool {
	sep := T(`\u`)
	for {
		i := index(s, sep)
		if i < 0 {
			return false
		}
		if i+2 < len(s) && (s[i+2] == 'd' || s[i+2] == 'D') {
			return true
		}
		s = s[i+1:]
	}
}

// parseFast parses s with a pooled fastjson parser and passes the value to
// use, which must copy what it keeps: the value dies with the parser. It
// reports false when the fast path does not apply or use says so.
func parseFast[T string | []byte](s T, use func(v *fastjson.Value, p *jsonParser) bool) bool {
	if !plainJSON(s) {
		return false
	}
	p := jsonParsers.Get().(*jsonParser)
	defer jsonParsers.Put(p)
	var v *fastjson.Value
	var err error
	switch s := any(s).(type) {
	case string:
		if err = fastjson.Validate(s); err == nil {
			v, err = p.Parse(s)
		}
	case []byte:
		if err = fastjson.ValidateBytes(s); err == nil {
			v, err = p.ParseBytes(s)
		}
	}
	return err == nil && use(v, p)
}

// DecodeEnvelope decodes one raw envelope as sent on raw.<domain>.v1. It
// returns exactly what json.Unmarshal into a firmbridge.Envelope returns,
// only faster; a message that is not a JSON envelope is a
// RejectInvalidEnvelope.
func DecodeEnvelope(b []byte) (firmbridge.Envelope, error) {
	var env firmbridge.Envelope
	if ok, _ := scanEnvelope(b, &env, nil); ok {
		return env, nil
	}
	env = firmbridge.Envelope{}
	if ok, _ := decodeEnvelopeFast(b, &env, nil); ok {
		return env, nil
	}
	return decodeEnvelopeRef(b)
}

// decodeEnvelopeRef is DecodeEnvelope by encoding/json. It is a function
// of its own so that the fast path's envelope does not escape with the
// pointer json.Unmarshal takes.
func decodeEnvelopeRef(b []byte) (firmbridge.Envelope, error) {
	var env firmbridge.Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return firmbridge.Envelope{}, &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Message: "not a JSON envelope: " + err.Error()}
	}
	return env, nil
}

// decodeEnvelopeFast is parseFast with fillEnvelope, without a closure
// that would move the envelope to the heap. With fields not nil, a payload
// that is a JSON object, with no payload_encoding, is also decoded into
// *fields from the same parse, as DecodeRecord would decode it (the whole
// document was validated, so the payload's own validation and parse would
// only repeat work); fieldsSet says whether it was.
func decodeEnvelopeFast(b []byte, env *firmbridge.Envelope, fields *Fields) (ok, fieldsSet bool) {
	if !plainJSON(b) || fastjson.ValidateBytes(b) != nil {
		return false, false
	}
	p := jsonParsers.Get().(*jsonParser)
	defer jsonParsers.Put(p)
	v, err := p.ParseBytes(b)
	if err != nil {
		return false, false
	}
	payload, ok := fillEnvelope(env, v, p)
	if !ok {
		return false, false
	}
	if fields == nil || payload == nil || payload.Type() != fastjson.TypeObject || strings.TrimSpace(env.PayloadEncoding) != "" {
		return true, false
	}
	o, _ := payload.Object()
	*fields = objectFields(o, p)
	return true, true
}

// envelopeKeys are the JSON names of firmbridge.Envelope's fields.
var envelopeKeys = []string{"record_id", "source", "schema_version", "uscc", "observed_at", "payload", "header", "payload_encoding", "charset"}

// fillEnvelope sets env from a parsed object the way encoding/json would:
// fields in document order, the last of a repeated key winning, null
// leaving a string field as it is, other keys ignored. It reports false
// where encoding/json would fail or behave in a way not reproduced here.
//
// The record id and the uscc are copied into one string, and the payload
// once, after the last of their keys was seen.
//
// It returns the payload's parsed value, which lives as long as v.
func fillEnvelope(env *firmbridge.Envelope, v *fastjson.Value, sc *jsonParser) (*fastjson.Value, bool) {
	o, err := v.Object()
	if err != nil {
		return nil, false
	}
	ok := true
	var late lateFields
	o.Visit(func(key []byte, v *fastjson.Value) {
		if ok {
			ok = setEnvelopeField(env, &late, sc, string(key), v)
		}
	})
	if !ok {
		return nil, false
	}
	if late.hasRecordID || late.hasUSCC {
		var buf [256]byte
		both := string(append(append(buf[:0], late.recordID...), late.uscc...))
		if late.hasRecordID {
			env.RecordID = both[:len(late.recordID)]
		}
		if late.hasUSCC {
			env.USCC = both[len(late.recordID):]
		}
	}
	if late.payload != nil {
		// A string keeps its escapes (nothing called Type on it, which
		// would unescape it), an object its members' raw text: the
		// payload reaches DecodeRecord as the provider wrote it.
		p := late.payload.MarshalTo(sc.scratch())
		sc.keep(p)
		if string(p) == "null" {
			return nil, false
		}
		env.Payload = bytes.Clone(p)
	}
	return late.payload, true
}

// lateFields are the envelope's fields fillEnvelope sets after visiting
// every key; their bytes live as long as the parsed value.
type lateFields struct {
	recordID, uscc       []byte
	hasRecordID, hasUSCC bool
	payload              *fastjson.Value
}

func setEnvelopeField(env *firmbridge.Envelope, late *lateFields, sc *jsonParser, key string, v *fastjson.Value) bool {
	switch key {
	case "record_id":
		return stringBytes(&late.recordID, &late.hasRecordID, v)
	case "source":
		return setInterned(&env.Source, v)
	case "uscc":
		return stringBytes(&late.uscc, &late.hasUSCC, v)
	case "header":
		return setInterned(&env.Header, v)
	case "payload_encoding":
		return setInterned(&env.PayloadEncoding, v)
	case "charset":
		return setInterned(&env.Charset, v)
	case "schema_version":
		if t := v.Type(); t != fastjson.TypeNumber && t != fastjson.TypeString {
			return false
		}
		if v.Type() == fastjson.TypeNumber {
			// What SchemaVersion.UnmarshalJSON does with a number,
			// without the copy its []byte argument costs.
			b := v.MarshalTo(sc.scratch())
			sc.keep(b)
			n, err := strconv.ParseUint(string(b), 10, 16)
			if err != nil {
				return false
			}
			env.SchemaVersion = firmbridge.SchemaVersion(n)
			return true
		}
		var sv firmbridge.SchemaVersion
		if sv.UnmarshalJSON(v.MarshalTo(nil)) != nil {
			return false
		}
		env.SchemaVersion = sv
		return true
	case "observed_at":
		if v.Type() != fastjson.TypeString {
			return false
		}
		// UnmarshalText is UnmarshalJSON without the quotes: the same
		// strict RFC 3339.
		b, _ := v.StringBytes()
		var t time.Time
		if t.UnmarshalText(b) != nil {
			return false
		}
		env.ObservedAt = t
		return true
	case "payload":
		late.payload = v
		return true
	}
	// encoding/json also matches keys case-insensitively.
	for _, k := range envelopeKeys {
		if strings.EqualFold(k, key) {
			return false
		}
	}
	return true
}

// stringBytes keeps the text of a JSON string in dst, as setJSONString
// would set it: null leaves dst as it is, another type is a failure.
func stringBytes(dst *[]byte, set *bool, v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		*dst, _ = v.StringBytes()
		*set = true
		return true
	}
	return false
}

// setInterned is setJSONString for fields with few distinct values (the
// source, a file's header line, the encoding): the same string is shared by
// every record that carries it instead of copied for each.
func setInterned(dst *string, v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		*dst = envelopeStrings.intern(b)
		return true
	}
	return false
}

// envelopeStrings interns the envelope's low-cardinality strings.
var envelopeStrings internTable

// internTable is a read-mostly set of strings: lookups take no lock and no
// allocation; additions copy the map, and stop at maxInterned, beyond
// which strings are simply copied (a feed with that many distinct headers
// is not one to optimize for).
type internTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]string]
}

const maxInterned = 1024

func (t *internTable) intern(b []byte) string {
	if m := t.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil && len(*old) >= maxInterned {
		return s
	}
	m := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[s] = s
	t.m.Store(&m)
	return s
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// decodeJSONObjectFast is decodeJSONObject's fast path; false means "use
// the reference decoder".
func decodeJSONObjectFast(text string) (Fields, bool) {
	var f Fields
	ok := parseFast(text, func(v *fastjson.Value, p *jsonParser) bool {
		o, err := v.Object()
		if err != nil {
			return false
		}
		f = objectFields(o, p)
		return true
	})
	return f, ok
}

// objectFields are the fields of a parsed JSON object, as decodeJSONObject
// makes them. Object keys are unescaped in place: o must not be marshalled
// after.
func objectFields(o *fastjson.Object, p *jsonParser) Fields {
	f := Fields{fields: make([]field, 0, o.Len())}
	t := p.fieldText()
	o.Visit(func(key []byte, v *fastjson.Value) {
		name := jsonKeys.intern(key)
		start := len(t.buf)
		switch v.Type() {
		case fastjson.TypeString:
			b, _ := v.StringBytes()
			t.buf = append(t.buf, b...)
			t.set(f.setAt(name, "", nil, true), start)
		case fastjson.TypeNull:
			t.set(f.setAt(name, "", jsonNull, false), -1)
		case fastjson.TypeObject, fastjson.TypeArray:
			raw := v.MarshalTo(nil)
			t.set(f.setAt(name, string(raw), raw, false), -1)
		default: // numbers keep their literal text, like a CSV field
			t.buf = v.MarshalTo(t.buf)
			t.set(f.setAt(name, "", nil, false), start)
		}
	})
	t.assign(&f)
	p.keepFieldText(t)
	return f
}

// fieldText gathers the text of a JSON object's string and number values
// in one buffer, which becomes one string the fields share: one
// allocation for all their values instead of one each.
type fieldText struct {
	buf   []byte
	spans []span // by field index; start -1 for a field with a value of its own
}

// span is where a field's value lies in fieldText's buffer.
type span struct{ start, end int }

// fieldText returns the parser's scratch space as an empty fieldText.
func (p *jsonParser) fieldText() fieldText {
	return fieldText{buf: p.scratch(), spans: p.spans[:0]}
}

// keepFieldText returns t's space to the parser once t was assigned.
func (p *jsonParser) keepFieldText(t fieldText) {
	p.keep(t.buf)
	p.spans = t.spans[:0]
}

// set records that field i's value is the text from start to the end of
// the buffer, or that it has a value of its own when start is -1. A field
// set again (a repeated key) keeps its index.
func (t *fieldText) set(i, start int) {
	sp := span{-1, -1}
	if start >= 0 {
		sp = span{start, len(t.buf)}
	}
	if i == len(t.spans) {
		t.spans = append(t.spans, sp)
	} else {
		t.spans[i] = sp
	}
}

// assign sets the values of f's fields from the buffer.
func (t *fieldText) assign(f *Fields) {
	all := string(t.buf)
	for i, sp := range t.spans {
		if sp.start >= 0 {
			f.fields[i].value = all[sp.start:sp.end]
		}
	}
}

// jsonKeys interns the field names of JSON payloads, a few dozen in all.
var jsonKeys internTable

var jsonNull = json.RawMessage("null")
