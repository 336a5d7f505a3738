package firmbridge_test

import (
	"slices"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/all"
)

// ScopeSources must name every source the connectors accept, each under
// the scope of its domain, so that no record escapes its scope and the
// source filters of the detail listings accept every real source.
func TestScopeSourcesMatchConnectors(t *testing.T) {
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	domainScope := map[string]string{firmbridge.DomainTax: firmbridge.ScopeTax, firmbridge.DomainPatent: firmbridge.ScopePatent,
		firmbridge.DomainOperations: firmbridge.ScopeOperations}
	var listed []string
	for scope, sources := range firmbridge.ScopeSources {
		if !firmbridge.ValidScope(scope) {
			t.Errorf("unknown scope %s", scope)
		}
		for _, s := range sources {
			if domainScope[firmbridge.SourceDomain(s)] != scope {
				t.Errorf("source %s listed under scope %s", s, scope)
			}
			listed = append(listed, s)
		}
	}
	have := reg.Sources()
	slices.Sort(listed)
	slices.Sort(have)
	if !slices.Equal(listed, have) {
		t.Errorf("ScopeSources lists %v, the connectors accept %v", listed, have)
	}
	for section, scopes := range firmbridge.SectionScopes {
		for _, s := range scopes {
			if !firmbridge.ValidScope(s) {
				t.Errorf("section %s needs unknown scope %s", section, s)
			}
		}
	}
}

func TestDataFloor(t *testing.T) {
	at := func(s string) *time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	for _, c := range []struct {
		in   *time.Time
		want string
	}{
		{nil, ""},
		{&time.Time{}, ""},
		{at("2024-03-01T00:00:00Z"), "2024-03-01"},
		{at("2024-03-01T00:00:01Z"), "2024-03-02"},           // data dated 2024-03-01 lies partly before it
		{at("2023-06-15T00:00:00.000000001Z"), "2023-06-16"}, // a nanosecond counts
		{at("2024-03-01T00:00:00+08:00"), "2024-03-01"},      // 2024-02-29T16:00Z
		{at("2023-06-15T08:00:00+08:00"), "2023-06-15"},      // midnight UTC, written in China
		{at("2023-06-15T12:00:01-12:00"), "2023-06-17"},      // 2023-06-16T00:00:01Z
		{at("2024-12-31T12:00:00Z"), "2025-01-01"},           // rolls over the year
	} {
		got := firmbridge.DataFloor(c.in)
		s := ""
		if !got.IsZero() {
			s = got.Format(time.DateOnly)
		}
		if s != c.want {
			t.Errorf("DataFloor(%v) = %q, want %q", c.in, s, c.want)
		}
	}
}
