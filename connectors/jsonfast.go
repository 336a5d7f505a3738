package connectors

import (
	"encoding/json"
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

var jsonParsers fastjson.ParserPool

// plainJSON reports whether s holds only text the fast path decodes exactly
// as encoding/json does: valid UTF-8, no byte below 0x20 (encoding/json
// replaces invalid UTF-8 and refuses raw control bytes in strings; white
// space other than the space between tokens is rare enough to leave to it)
// and no \uD… escape (encoding/json and fastjson differ on lone surrogates).
func plainJSON[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20:
			return false
		case c == '\\' && i+2 < len(s) && s[i+1] == 'u' && (s[i+2] == 'd' || s[i+2] == 'D'):
			return false
		}
	}
	switch s := any(s).(type) {
	case string:
		return utf8.ValidString(s)
	case []byte:
		return utf8.Valid(s)
	}
	return false
}

// parseFast parses s with a pooled fastjson parser and passes the value to
// use, which must copy what it keeps: the value dies with the parser. It
// reports false when the fast path does not apply or use says so.
func parseFast[T string | []byte](s T, use func(v *fastjson.Value) bool) bool {
	if !plainJSON(s) {
		return false
	}
	p := jsonParsers.Get()
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
	return err == nil && use(v)
}

// DecodeEnvelope decodes one raw envelope as sent on raw.<domain>.v1. It
// returns exactly what json.Unmarshal into a firmbridge.Envelope returns,
// only faster; a message that is not a JSON envelope is a
// RejectInvalidEnvelope.
func DecodeEnvelope(b []byte) (firmbridge.Envelope, error) {
	var env firmbridge.Envelope
	if parseFast(b, func(v *fastjson.Value) bool { return fillEnvelope(&env, v) }) {
		return env, nil
	}
	env = firmbridge.Envelope{}
	if err := json.Unmarshal(b, &env); err != nil {
		return firmbridge.Envelope{}, &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Message: "not a JSON envelope: " + err.Error()}
	}
	return env, nil
}

// envelopeKeys are the JSON names of firmbridge.Envelope's fields.
var envelopeKeys = []string{"record_id", "source", "schema_version", "uscc", "observed_at", "payload", "header", "payload_encoding", "charset"}

// fillEnvelope sets env from a parsed object the way encoding/json would:
// fields in document order, the last of a repeated key winning, null
// leaving a string field as it is, other keys ignored. It reports false
// where encoding/json would fail or behave in a way not reproduced here.
func fillEnvelope(env *firmbridge.Envelope, v *fastjson.Value) bool {
	o, err := v.Object()
	if err != nil {
		return false
	}
	ok := true
	o.Visit(func(key []byte, v *fastjson.Value) {
		if ok {
			ok = setEnvelopeField(env, string(key), v)
		}
	})
	return ok
}

func setEnvelopeField(env *firmbridge.Envelope, key string, v *fastjson.Value) bool {
	switch key {
	case "record_id":
		return setJSONString(&env.RecordID, v)
	case "source":
		return setInterned(&env.Source, v)
	case "uscc":
		return setJSONString(&env.USCC, v)
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
		var sv firmbridge.SchemaVersion
		var buf [64]byte
		if sv.UnmarshalJSON(v.MarshalTo(buf[:0])) != nil {
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
		if v.Type() == fastjson.TypeNull {
			return false
		}
		// A string keeps its escapes, an object its members' raw text:
		// the payload reaches DecodeRecord as the provider wrote it.
		env.Payload = v.MarshalTo(nil)
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

func setJSONString(dst *string, v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		*dst = string(b)
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
	ok := parseFast(text, func(v *fastjson.Value) bool {
		o, err := v.Object()
		if err != nil {
			return false
		}
		f.fields = make([]field, 0, o.Len())
		o.Visit(func(key []byte, v *fastjson.Value) {
			switch v.Type() {
			case fastjson.TypeString:
				b, _ := v.StringBytes()
				f.set(string(key), string(b), nil, true)
			case fastjson.TypeNull:
				f.set(string(key), "", jsonNull, false)
			case fastjson.TypeObject, fastjson.TypeArray:
				raw := v.MarshalTo(nil)
				f.set(string(key), string(raw), raw, false)
			default: // numbers keep their literal text, like a CSV field
				var buf [64]byte
				f.set(string(key), string(v.MarshalTo(buf[:0])), nil, false)
			}
		})
		return true
	})
	return f, ok
}

var jsonNull = json.RawMessage("null")
