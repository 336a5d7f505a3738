package connectors_test

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Fuzz targets for the three payload decoders: a JSON object, one CSV line
// with its header, and base64 bytes in GB18030/GBK. Every failure must be a
// *firmbridge.Reject; nothing may panic.

func mustReject(t *testing.T, err error) {
	t.Helper()
	var rej *firmbridge.Reject
	if err != nil && !errors.As(err, &rej) {
		t.Fatalf("error %v (%T) is not a *firmbridge.Reject", err, err)
	}
	if rej != nil && (rej.Code == "" || rej.Message == "") {
		t.Fatalf("reject %+v lacks a code or a message", rej)
	}
}

func FuzzDecodeJSONObject(f *testing.F) {
	for _, s := range []string{
		`{"uscc": "91350100m000100y43", "year": "2023年", "rating": "A级"}`,
		`{"taxpayer_id": "91350100M000100Y43", "tax_year": 2023, "operating_revenue": "52,310,000.00", "grant_date": null}`,
		`{"applicants": [{"name": "福州某某科技有限公司", "uscc": "91350100M000100Y43"}], "ipc": ["H01M 10/42"]}`,
		`{"USCC": "a", "uscc": "b", "ｕｓｃｃ": "c"}`, `{}`, `{"a":1}{"b":2}`, `{"a":`, `[1,2]`, `"{\"a\": 1}"`,
		`{"a": 1e999}`, `{"\ud800": "x"}`, "{\"a\":\"\xff\"}", ` {"a" : [ {"b": {"c": []}} ] } `, `null`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		env := firmbridge.Envelope{Payload: []byte(payload)}
		fields, err := connectors.DecodeRecord(env)
		mustReject(t, err)
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal([]byte(payload), &obj) == nil && obj != nil
		trimmed := strings.TrimSpace(payload)
		if isObject && strings.HasPrefix(trimmed, "{") && err != nil {
			t.Fatalf("valid JSON object %q rejected: %v", payload, err)
		}
		if err != nil || !strings.HasPrefix(trimmed, "{") {
			return
		}
		// The decoder trims white space (any Unicode space, not only
		// JSON's) around the payload; what remains must be valid JSON.
		if !json.Valid([]byte(trimmed)) {
			t.Fatalf("invalid JSON %q accepted as an object", payload)
		}
		for _, name := range fields.Names() {
			if _, _, ok := fields.Lookup(name); !ok {
				t.Fatalf("field %q of %q cannot be looked up", name, payload)
			}
		}
		// Field values agree with encoding/json for names that no other
		// name folds onto.
		keys := map[string]int{}
		for k := range obj {
			keys[strings.ToLower(connectors.Fold(k))]++
		}
		for k, v := range obj {
			if keys[strings.ToLower(connectors.Fold(k))] != 1 {
				continue
			}
			raw, ok := fields.Raw(k)
			if !ok || !sameJSON(raw, v) {
				t.Fatalf("field %q of %q = %s, encoding/json has %s", k, payload, raw, v)
			}
		}
	})
}

// sameJSON reports whether two JSON texts hold the same value, numbers
// compared by their literal text.
func sameJSON(a, b []byte) bool {
	decode := func(b []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	return okA && okB && reflect.DeepEqual(va, vb)
}

// FuzzDecodeEnvelope checks the fast envelope decoder against the
// reference, encoding/json: the same envelope or both failing.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range connectors.EnvelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := connectors.DecodeEnvelope(msg)
		mustReject(t, err)
		var want firmbridge.Envelope
		wantErr := json.Unmarshal(msg, &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: DecodeEnvelope error %v, encoding/json error %v", msg, err, wantErr)
		}
		if err != nil {
			return
		}
		if (len(got.Payload) == 0) != (len(want.Payload) == 0) || len(got.Payload) > 0 && !sameJSON(got.Payload, want.Payload) {
			t.Fatalf("%q: payload %s, encoding/json has %s", msg, got.Payload, want.Payload)
		}
		got.Payload, want.Payload = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: envelope\n%+v\nencoding/json has\n%+v", msg, got, want)
		}
	})
}

func FuzzDecodeCSVLine(f *testing.F) {
	vat := "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	f.Add(vat, `91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`, "a", "b", "c")
	f.Add("application_no,event_date,event_code,event_text,from_party,to_party",
		"201710601862.3,2019-05-10,PLEDGE,质押,甲公司(91350100M000100Y43),\"某某银行股份有限公司(91110000100000000X)\"", "", " ", "\"")
	f.Add("a,b,c", "1,2", "x,y", "\"q\"\"r\"", "line\nbreak")
	f.Add("", "only,one,line\nand,a,second", "\ufeffa", "b\r", "")
	f.Add("a,\"b", "1,\"2", "", "", "")
	f.Fuzz(func(t *testing.T, header, line, v1, v2, v3 string) {
		// Arbitrary header and line: no panic, only rejects.
		p, _ := json.Marshal(line)
		_, err := connectors.DecodeRecord(firmbridge.Envelope{Payload: p, Header: header})
		mustReject(t, err)

		// A line written by encoding/csv from three values reads back.
		vals := []string{v1, v2, v3}
		for _, v := range vals {
			if !utf8.ValidString(v) || strings.ContainsAny(v, "\r\n") || strings.HasPrefix(v, "\ufeff") {
				return
			}
		}
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write(vals)
		w.Flush()
		text := strings.TrimSuffix(b.String(), "\n")
		if strings.TrimSpace(text) == "" {
			return
		}
		p, _ = json.Marshal(text)
		fields, err := connectors.DecodeRecord(firmbridge.Envelope{Payload: p, Header: "x,y,z"})
		if strings.HasPrefix(strings.TrimSpace(text), "{") {
			return // a line starting with { is taken for a JSON object
		}
		if err != nil {
			t.Fatalf("CSV line %q from %q rejected: %v", text, vals, err)
		}
		for i, n := range []string{"x", "y", "z"} {
			if got := fields.Get(n); got != vals[i] {
				t.Fatalf("CSV line %q: field %s = %q, want %q", text, n, got, vals[i])
			}
		}
	})
}

func FuzzDecodeBase64GB18030(f *testing.F) {
	for _, s := range []string{
		"91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,\"1,234.56\",160.49,88.20,72.29,万元",
		"企业统一社会信用代码,月份,进出口标志,金额,币制", "€", "𠀀", "plain ascii", "",
	} {
		b, err := connectors.EncodeGB18030(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "gb18030", false)
		f.Add(b, "gbk", true)
		f.Add([]byte(s), "", false)
	}
	f.Add([]byte{0x81, 0x30, 0x81}, "gb18030", false)
	f.Add([]byte{0x80, 0xff, 0xfe}, "", false)
	f.Add([]byte{0xef, 0xbb, 0xbf, 'a'}, "utf-8", true)
	f.Fuzz(func(t *testing.T, data []byte, charset string, raw bool) {
		s := base64.StdEncoding.EncodeToString(data)
		if raw {
			s = base64.RawStdEncoding.EncodeToString(data)
		}
		p, _ := json.Marshal(s)
		env := firmbridge.Envelope{Payload: p, PayloadEncoding: "base64", Charset: charset}
		text, err := connectors.PayloadText(env)
		mustReject(t, err)
		if err != nil {
			return
		}
		if !utf8.ValidString(text) {
			t.Fatalf("PayloadText(%x, %q) = %q is not valid UTF-8", data, charset, text)
		}
		cs := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(charset)), "-", "")
		gb := cs == "gb18030" || cs == "gbk" || cs == "gb2312" || cs == "cp936" || cs == "euccn" || (cs == "" && !utf8.Valid(data))
		if !gb {
			return
		}
		if strings.ContainsRune(text, utf8.RuneError) {
			t.Fatalf("GB18030 %x decoded with a replacement character: %q", data, text)
		}
		// Decoding is stable: the text re-encoded decodes to itself.
		enc, err := connectors.EncodeGB18030(text)
		if err != nil {
			t.Fatalf("decoded text %q cannot be encoded back: %v", text, err)
		}
		back, err := connectors.DecodeCharset(enc, "gb18030")
		if err != nil || back != text {
			t.Fatalf("GB18030 round trip of %q: %q, %v", text, back, err)
		}
	})
}
