package connectors

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
)

type stubConnector string

func (s stubConnector) Source() string { return string(s) }
func (stubConnector) SchemaVersions() []firmbridge.SchemaVersion {
	return []firmbridge.SchemaVersion{1}
}
func (stubConnector) Normalize(context.Context, firmbridge.Envelope, time.Time) ([]firmbridge.Row, error) {
	return nil, nil
}

// FuzzRegistryLookup: finding a source as it is first gives what the
// trimmed, lower-cased lookup gives.
func FuzzRegistryLookup(f *testing.F) {
	reg, err := NewRegistry(stubConnector("tax.vat_return"), stubConnector("ops.water"), stubConnector("patent.legal_event"), stubConnector("k"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"tax.vat_return", " tax.vat_return ", "TAX.VAT_RETURN", "ops.water", "ops.Water\t", "", "x", "k\u212a", "K\u212a", "kk", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotOK := reg.Lookup(s)
		want, wantOK := reg.bySource[strings.ToLower(strings.TrimSpace(s))]
		if got != want || gotOK != wantOK {
			t.Fatalf("Lookup(%q) = %v, %v; want %v, %v", s, got, gotOK, want, wantOK)
		}
	})
}
