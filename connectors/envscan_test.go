package connectors_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// Every envelope synth makes, of every source, is read by the one-pass
// scanner rather than left to the slower parser: the scanner is the
// ingest path's, not an optimization for a benchmark's few shapes.
func TestScanEnvelope_TakesEverySource(t *testing.T) {
	end := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	taken := map[string]int{}
	for _, env := range synth.Envelopes(1, synth.Firms(1, 40), 24, end, synth.Options{}) {
		b, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		var got firmbridge.Envelope
		var fields connectors.Fields
		ok, fieldsSet := connectors.ScanEnvelope(b, &got, &fields)
		if !ok {
			t.Fatalf("%s: left to the parser", b)
		}
		if object := env.Payload[0] == '{'; fieldsSet != object {
			t.Fatalf("%s: fields set %v for an object payload %v", b, fieldsSet, object)
		}
		taken[env.Source]++
	}
	if len(taken) != 10 {
		t.Errorf("envelopes of %d sources, want 10: %v", len(taken), taken)
	}
}
