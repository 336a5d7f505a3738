package all_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// normalizeTwoPass is what NormalizeJSON did before it parsed object
// payloads with the envelope: decode the envelope, then normalize it
// (the connector decodes the payload again).
func normalizeTwoPass(reg *connectors.Registry, b []byte) (string, error) {
	env, err := connectors.DecodeEnvelope(b)
	if err != nil {
		return fmt.Sprintf("%#v", []firmbridge.Row(nil)), err
	}
	rows, err := reg.Normalize(context.Background(), env, end)
	return fmt.Sprintf("%#v", rows), err
}

// onePassSeeds are envelopes of every source, valid and malformed, and
// object payloads the one-pass path must treat as the two-pass one does.
func onePassSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, env := range synth.Envelopes(9, synth.Firms(9, 8), 12, end, synth.Options{Malformed: 0.3}) {
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	usccs := synth.Firms(3, 1)
	u := usccs[0].USCC
	for _, payload := range []string{
		`{"uscc":"` + u + `","month":"2025-03","account_no":"A1","consumption_kwh":"1,234.5"}`,
		`{"uscc":"` + u + `","month":"2025-03","account_no":"A1","consumption_kwh":12,"consumption_kwh":"13"}`,
		`{"u\u0073cc":"` + u + `","month":"2025-03","account_no":"A\"1","consumption_kwh":{"v":1}}`,
		`{"uscc":null,"month":[1,2],"account_no":true,"consumption_kwh":-1e3}`,
		`{}`,
	} {
		for _, extra := range []string{``, `,"payload_encoding":"base64"`, `,"payload_encoding":" "`, `,"payload":null`} {
			seeds = append(seeds, []byte(`{"record_id":"r1","source":"ops.electricity","schema_version":1,"uscc":"`+u+`","observed_at":"2025-04-01T00:00:00Z","payload":`+payload+extra+`}`))
		}
	}
	return seeds
}

// NormalizeJSON, which parses an object payload with its envelope, gives
// the rows and the error of decoding the envelope and then the payload.
func TestNormalizeJSON_OnePassMatchesTwoPass(t *testing.T) {
	reg := mustRegistry(t)
	objects, stored := 0, 0
	for _, b := range onePassSeeds(t) {
		checkOnePass(t, reg, b)
		var env struct{ Payload json.RawMessage }
		if json.Unmarshal(b, &env) == nil && len(env.Payload) > 0 && env.Payload[0] == '{' {
			objects++
			if rows, err := reg.NormalizeJSON(context.Background(), b, end); err == nil && len(rows) > 0 {
				stored++
			}
		}
	}
	// The seeds must exercise the one-pass path, accepted and rejected.
	if objects < 100 || stored < 50 || stored == objects {
		t.Errorf("%d seeds with object payloads, %d of them stored: too few to compare the paths", objects, stored)
	}
	t.Logf("%d seeds with object payloads, %d of them stored", objects, stored)
}

func FuzzNormalizeJSON_OnePassMatchesTwoPass(f *testing.F) {
	reg := mustRegistry(f)
	for _, b := range onePassSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkOnePass(t, reg, b) })
}

func checkOnePass(t *testing.T, reg *connectors.Registry, b []byte) {
	t.Helper()
	rows, err := reg.NormalizeJSON(context.Background(), b, end)
	got := fmt.Sprintf("%#v", rows)
	want, wantErr := normalizeTwoPass(reg, b)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(reflect.TypeOf(err), reflect.TypeOf(wantErr)) {
		t.Fatalf("%s:\none pass: %v\ntwo pass: %v", b, err, wantErr)
	}
	if got != want {
		t.Fatalf("%s:\none pass: %s\ntwo pass: %s", b, got, want)
	}
}
