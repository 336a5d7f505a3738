package connectors

import (
	"reflect"
	"testing"

	"github.com/firmbridge/firmbridge"
)

// EnvelopeSeeds are envelopes, valid and not, for the fuzz targets of the
// envelope decoders (FuzzScanEnvelope, and FuzzDecodeEnvelope outside the
// package): ones the scanner must read as decodeEnvelopeFast does, and
// ones it must leave to it.
var EnvelopeSeeds = []string{
	`{"record_id":"r1","source":"tax.vat_return","schema_version":1,"uscc":"91350100M000100Y43","observed_at":"2026-01-02T03:04:05Z","payload":{"a":"b","n":1.50}}`,
	`{"record_id":"r1","source":"ops.water","schema_version":"v2","observed_at":"2026-01-02T03:04:05.123+08:00","payload":"a,b","header":"x,y"}`,
	`{"record_id":"r1","payload":"AAEC","payload_encoding":"base64","charset":"gb18030","schema_version":"1"}`,
	`{"Record_ID":"r1","SOURCE":"x","ſource":"y","payload":null,"record_id":null}`,
	`{"record_id":1}`, `{"schema_version":null}`, `{"observed_at":"yesterday"}`, `{"observed_at":null}`,
	`{"record_id":"a\u00e9\ud83d\ude00","payload":"\ud800"}`, "{\"record_id\":\"\xff\"}", "{\"record_id\":\"\t\"}",
	`{"record_id":"r","record_id":"s"}`, `[]`, `null`, `{"payload":[1, 2 ,3]}`, `{"schema_version":1e2}`,
	"\t{\"record_id\":\"r\"}\n", `{"record_id":"r"} x`, `{"extra":{"deep":[{"x":null}]},"source":"s"}`,
	`{ "record_id" : "r1" , "payload" : { "a" : [ 1 , { "b" : "c d" } ] , "e" : "f\"g" } , "uscc" : "u" }`,
	`{"payload":{"k\u00e9y":"v\u4e2d\n\/\\","k":-0.5e+3,"t":true,"f":false,"n":null,"k":"again"},"source":"s"}`,
	`{"payload":{"a":01}}`, `{"payload":{"a":1.}}`, `{"payload":{"a":.5}}`, `{"payload":{"a":-}}`, `{"payload":{"a":1e}}`,
	`{"payload":{"a":"\x"}}`, `{"payload":{"a":"\u12"}}`, `{"payload":{"a":tru}}`, `{"payload":{"a":1,}}`, `{"payload":{,}}`,
	`{"payload":{"a" "b"}}`, `{"payload":[1,]}`, `{"payload":"x",}`, `{"payload":"x"`, `{"payload":"x\u0000y"}`,
	`{"schema_version":70000}`, `{"schema_version":-1}`, `{"schema_version":1.0}`, `{"sour\u0063e":"s"}`,
	`{"payload":{"a":"b"},"payload_encoding":"base64"}`, `{"payload":{"a":"b"},"payload":"s"}`, `{"payload":"s","payload":{"a":"b"}}`,
	`{"source":"a\"b"}`, `{"header":null,"charset":"utf-8","header":"h"}`, `{}`, `{"a":[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
}

// FuzzScanEnvelope checks the one-pass scanner against decodeEnvelopeFast:
// where the scanner answers, it answers exactly what the parser does.
func FuzzScanEnvelope(f *testing.F) {
	for _, s := range EnvelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkScanEnvelope(t, b) })
}

func checkScanEnvelope(t *testing.T, b []byte) (scanned bool) {
	t.Helper()
	var env, wantEnv firmbridge.Envelope
	var fields, wantFields Fields
	ok, fieldsSet := scanEnvelope(b, &env, &fields)
	if !ok {
		return false
	}
	wantOK, wantFieldsSet := decodeEnvelopeFast(b, &wantEnv, &wantFields)
	if !wantOK {
		t.Fatalf("%q: scanned, but decodeEnvelopeFast fails on it", b)
	}
	if fieldsSet != wantFieldsSet {
		t.Fatalf("%q: scanned fields %v, decodeEnvelopeFast %v", b, fieldsSet, wantFieldsSet)
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Fatalf("%q: scanned\n%+v\ndecodeEnvelopeFast\n%+v", b, env, wantEnv)
	}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Fatalf("%q: scanned fields\n%+v\ndecodeEnvelopeFast\n%+v", b, fields, wantFields)
	}
	// Without fields wanted, the envelope is the same.
	var bare firmbridge.Envelope
	if ok, set := scanEnvelope(b, &bare, nil); !ok || set || !reflect.DeepEqual(bare, env) {
		t.Fatalf("%q: scanned without fields: %v %v\n%+v", b, ok, set, bare)
	}
	return true
}

// The seeds the scanner must take, not leave to the parser: compact and
// spaced envelopes, escapes in payload keys and values.
func TestScanEnvelope_Taken(t *testing.T) {
	for _, s := range []string{
		EnvelopeSeeds[0],
		`{"record_id":"r1","source":"ops.water","schema_version":2,"observed_at":"2026-01-02T03:04:05.123+08:00","payload":"a,b","header":"x,y"}`,
		`{ "record_id" : "r1" , "payload" : { "a" : [ 1 , { "b" : "c d" } ] , "e" : "f\"g" } , "uscc" : "u" }`,
		`{"payload":{"k\u00e9y":"v\u4e2d\n\/\\","k":-0.5e+3,"t":true,"f":false,"n":null,"k":"again"},"source":"s"}`,
		`{"payload":{"a":"b"},"payload":"s"}`, `{}`,
	} {
		if !checkScanEnvelope(t, []byte(s)) {
			t.Errorf("%s: left to the parser", s)
		}
	}
	for _, s := range EnvelopeSeeds {
		checkScanEnvelope(t, []byte(s))
	}
}

// BenchmarkScanEnvelope compares the scanner with the fastjson path on an
// envelope with an object payload and one with a CSV line.
func BenchmarkScanEnvelope(b *testing.B) {
	for name, msg := range map[string]string{
		"object": `{"record_id":"SI-91330100430285819E-2024-10","source":"ops.social_insurance","schema_version":1,"uscc":"91330100430285819E","observed_at":"2024-11-10T09:59:01+08:00","payload":{"uscc":"91330100430285819e","period":"2024-10","insured_headcount":293,"payroll_base_total":"245.7万元"}}`,
		"csv":    `{"record_id":"SGCC-059106106521-202410","source":"ops.electricity","schema_version":1,"uscc":"91350100NK10193368","observed_at":"2024-11-03T11:50:55+08:00","payload":"059106106521,9135 0100 NK1019 3368,2024-10,\"446,913.45\",千瓦时,1489.7,","header":"account_no,uscc,month,consumption,unit,peak_kw,arrears","charset":"utf-8"}`,
	} {
		for _, dec := range []struct {
			name string
			fn   func([]byte, *firmbridge.Envelope, *Fields) (bool, bool)
		}{{"scan", scanEnvelope}, {"fastjson", decodeEnvelopeFast}} {
			b.Run(name+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var env firmbridge.Envelope
					var f Fields
					if ok, _ := dec.fn([]byte(msg), &env, &f); !ok {
						b.Fatal("not decoded")
					}
				}
			})
		}
	}
}
