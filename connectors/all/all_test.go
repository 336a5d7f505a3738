package all_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

var end = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func TestRegistry_Sources(t *testing.T) {
	got := mustRegistry(t).Sources()
	want := []string{"ops.customs", "ops.electricity", "ops.social_insurance", "ops.water",
		"patent.bibliographic", "patent.legal_event",
		"tax.arrears", "tax.cit_annual", "tax.credit_rating", "tax.vat_return"}
	if !slices.Equal(got, want) {
		t.Errorf("Sources() = %v, want %v", got, want)
	}
	for _, s := range want {
		c, ok := mustRegistry(t).Lookup(s)
		if !ok || c.Source() != s || !slices.Contains(c.SchemaVersions(), 1) {
			t.Errorf("Lookup(%s) = %v, %v; want a connector of version 1", s, c, ok)
		}
	}
}

type table struct {
	name    string
	cols    []string
	types   []string
	engine  string
	orderBy string
}

var (
	reCreate = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS ([a-z_0-9]+) \((.*)\) ENGINE = (.*?)\n(?:PARTITION BY .*\n)?ORDER BY (.*)$`)
	reBanned = regexp.MustCompile(`(?i)LowCardinality|\bTTL\b|\bMap\(|\bJSON\b|DateTime64|IPv4|IPv6|\bINDEX\b`)
)

// readMigrations parses the CREATE TABLE statements of the migration
// files, split the way schema.splitStatements splits them.
func readMigrations(t *testing.T, names ...string) map[string]table {
	t.Helper()
	tables := map[string]table{}
	for _, n := range names {
		body, err := os.ReadFile(filepath.Join("..", "..", "schema", "migrations", n))
		if err != nil {
			t.Fatalf("read migration: %v", err)
		}
		var cur strings.Builder
		for _, line := range strings.Split(string(body), "\n") {
			tl := strings.TrimSpace(line)
			if tl == "" || strings.HasPrefix(tl, "--") {
				continue
			}
			cur.WriteString(tl + "\n")
			if !strings.HasSuffix(tl, ";") {
				continue
			}
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			cur.Reset()
			if reBanned.MatchString(stmt) {
				t.Errorf("%s: statement uses something ClickHouse 18.16 lacks:\n%s", n, stmt)
			}
			m := reCreate.FindStringSubmatch(stmt)
			if m == nil {
				t.Errorf("%s: not a CREATE TABLE IF NOT EXISTS statement:\n%s", n, stmt)
				continue
			}
			tb := table{name: m[1], engine: m[3], orderBy: m[4]}
			for _, item := range splitTop(m[2]) {
				name, typ, _ := strings.Cut(strings.TrimSpace(item), " ")
				tb.cols = append(tb.cols, name)
				tb.types = append(tb.types, strings.TrimSpace(typ))
			}
			tables[tb.name] = tb
		}
		if strings.TrimSpace(cur.String()) != "" {
			t.Errorf("%s: trailing statement without ';'", n)
		}
	}
	return tables
}

func splitTop(s string) []string {
	var out []string
	depth, quote, start := 0, false, 0
	for i, c := range s {
		switch {
		case c == '\'':
			quote = !quote
		case quote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// firms is fixed by migration 0001 (owned by schema); its columns are checked here too.
var firmsTable = table{name: "firms",
	cols:  []string{"uscc", "name", "record_id", "source", "schema_version", "observed_at", "ingested_at", "version"},
	types: []string{"String", "String", "String", "String", "UInt16", "DateTime", "DateTime", "UInt64"}}

// TestRows_MatchMigrations normalizes a generated data set and appends
// every row to clickhouse-go columns of the types the migrations declare:
// names and order must match, and every value must be accepted.
func TestRows_MatchMigrations(t *testing.T) {
	tables := readMigrations(t, "0002_tax.sql", "0003_patent.sql", "0004_operations.sql")
	for name, tb := range tables {
		if tb.engine != "ReplacingMergeTree(version)" {
			t.Errorf("%s: engine %s, want ReplacingMergeTree(version)", name, tb.engine)
		}
		if n := len(tb.cols); n < 6 || !slices.Equal(tb.cols[n-6:], firmbridge.LineageColumns) {
			t.Errorf("%s: columns %v do not end with the lineage columns", name, tb.cols)
		}
	}
	tables["firms"] = firmsTable
	reg := mustRegistry(t)
	seen := map[string]int{}
	sc := &column.ServerContext{Timezone: time.UTC}
	for _, env := range synth.Envelopes(11, synth.Firms(11, 25), 24, end, synth.Options{}) {
		rows, err := reg.Normalize(context.Background(), env, end)
		if err != nil {
			t.Fatalf("%s: %v", env.RecordID, err)
		}
		for _, r := range rows {
			tb, ok := tables[r.Table()]
			if !ok {
				t.Fatalf("row for table %s, which no migration creates", r.Table())
			}
			seen[r.Table()]++
			if !slices.Equal(r.Columns(), tb.cols) {
				t.Fatalf("%s: Columns() = %v, migration has %v", r.Table(), r.Columns(), tb.cols)
			}
			vals := r.Values()
			if len(vals) != len(tb.cols) {
				t.Fatalf("%s: %d values for %d columns", r.Table(), len(vals), len(tb.cols))
			}
			for i, v := range vals {
				col, err := column.Type(tb.types[i]).Column(tb.cols[i], sc)
				if err != nil {
					t.Fatalf("%s.%s: column type %s: %v", r.Table(), tb.cols[i], tb.types[i], err)
				}
				if err := col.AppendRow(v); err != nil {
					t.Fatalf("%s.%s %s: append %T %v: %v", r.Table(), tb.cols[i], tb.types[i], v, v, err)
				}
			}
		}
	}
	for name := range tables {
		if seen[name] == 0 {
			t.Errorf("no generated record produced a row for table %s", name)
		}
	}
}

func TestRegistry_Normalize_Rejects(t *testing.T) {
	reg := mustRegistry(t)
	obs := time.Date(2024, 5, 2, 9, 0, 0, 0, connectors.ChinaTime)
	valid := firmbridge.Envelope{RecordID: "r1", Source: "tax.credit_rating", SchemaVersion: 1, ObservedAt: obs,
		Payload: []byte(`{"uscc": "91350100M000100Y43", "year": "2023年", "rating": "A级"}`)}
	tests := []struct {
		name      string
		edit      func(e *firmbridge.Envelope)
		code      string
		field     string
		ingestErr bool
	}{
		{"valid", func(e *firmbridge.Envelope) {}, "", "", false},
		{"unknown source", func(e *firmbridge.Envelope) { e.Source = "tax.vat_refund" }, firmbridge.RejectUnknownSource, "source", false},
		{"unknown version", func(e *firmbridge.Envelope) { e.SchemaVersion = 2 }, firmbridge.RejectUnknownVersion, "schema_version", false},
		{"no record id", func(e *firmbridge.Envelope) { e.RecordID = " " }, firmbridge.RejectMissingField, "record_id", false},
		{"no payload", func(e *firmbridge.Envelope) { e.Payload = nil }, firmbridge.RejectMissingField, "payload", false},
		{"observed in the future", func(e *firmbridge.Envelope) { e.ObservedAt = obs.AddDate(0, 0, 3) }, firmbridge.RejectInvalidEnvelope, "observed_at", false},
		{"envelope uscc of another firm", func(e *firmbridge.Envelope) { e.USCC = "91350100M000100Y4" + "4" }, firmbridge.RejectInvalidUSCC, "uscc", false},
		{"uscc mismatch", func(e *firmbridge.Envelope) { e.USCC = mustUSCC(t, "91350100M00010000") }, firmbridge.RejectUSCCMismatch, "uscc", false},
		{"uscc matches after clean-up", func(e *firmbridge.Envelope) { e.USCC = "9135 0100-m000100y43" }, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := valid
			tt.edit(&env)
			rows, err := reg.Normalize(context.Background(), env, obs.Add(time.Hour))
			if tt.code == "" {
				if err != nil || len(rows) != 1 {
					t.Fatalf("got %d rows, %v; want 1 row", len(rows), err)
				}
				return
			}
			var rej *firmbridge.Reject
			if !errors.As(err, &rej) {
				t.Fatalf("got %v, want a *firmbridge.Reject", err)
			}
			if rej.Code != tt.code || rej.Field != tt.field || rej.Message == "" {
				t.Errorf("got reject %q field %q message %q, want code %q field %q and a message", rej.Code, rej.Field, rej.Message, tt.code, tt.field)
			}
		})
	}
}

func TestRegistry_Normalize_Cancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := mustRegistry(t).Normalize(ctx, firmbridge.Envelope{}, end)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func mustUSCC(t *testing.T, first17 string) string {
	t.Helper()
	c, err := connectors.CheckChar(first17)
	if err != nil {
		t.Fatal(err)
	}
	return first17 + string(c)
}

// FuzzRegistry_Normalize feeds arbitrary payloads to every source: no
// panic, and every failure is a *firmbridge.Reject.
func FuzzRegistry_Normalize(f *testing.F) {
	reg := mustRegistry(f)
	for i, env := range synth.Envelopes(4, synth.Firms(4, 3), 6, end, synth.Options{Malformed: 0.3}) {
		if i%5 == 0 {
			f.Add(env.Source, string(env.Payload), env.Header, env.PayloadEncoding, env.Charset)
		}
	}
	f.Fuzz(func(t *testing.T, source, payload, header, encoding, charset string) {
		env := firmbridge.Envelope{RecordID: "fuzz", Source: source, SchemaVersion: 1, ObservedAt: end,
			Payload: []byte(payload), Header: header, PayloadEncoding: encoding, Charset: charset}
		rows, err := reg.Normalize(context.Background(), env, end)
		var rej *firmbridge.Reject
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("error %v is not a *firmbridge.Reject", err)
		}
		for _, r := range rows {
			if len(r.Columns()) != len(r.Values()) {
				t.Fatalf("%s: %d columns, %d values", r.Table(), len(r.Columns()), len(r.Values()))
			}
			if f, ok := r.(connectors.FirmRow); ok && !connectors.ValidUSCC(f.USCC) {
				t.Fatalf("firms row with invalid USCC %q", f.USCC)
			}
		}
	})
}

func mustRegistry(t testing.TB) *connectors.Registry {
	t.Helper()
	r, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
