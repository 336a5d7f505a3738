package schema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// scratchStore opens a migrated scratch database (internal/testenv
// imports this package, so this test cannot use it).
func scratchStore(t *testing.T) *Store {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ClickHouse; skipped because -short was given")
	}
	addr := os.Getenv("FIRMBRIDGE_CLICKHOUSE_ADDR")
	if addr == "" {
		addr = "127.0.0.1:19000"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := Open(ctx, Config{Addr: addr, Database: "test_profile_records_" + hex.EncodeToString(b)})
	if err != nil {
		t.Fatalf("ClickHouse at %s: %v (start it with deploy/local/services.sh up)", addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = store.DropDatabase(ctx)
		store.Close()
	})
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return store
}

// recordText renders a record for comparison.
func recordText(r record) string {
	return fmt.Sprintf("%s|%s|%s|%s|%q|%q|%s|%s", r.kind, r.firm, r.key, r.date.Format(dateLayout), r.fields, r.lists, r.source, r.observed.UTC().Format(time.RFC3339))
}

func recordTexts(recs []record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = recordText(r)
	}
	slices.Sort(out)
	return out
}

// TestProfileRecords_MatchSources checks migration 0007's copies against
// the canonical tables they copy: for generated data with re-deliveries,
// corrections (a newer version with other values, a value become NULL, a
// transfer to another firm) and consent floors, the profile queries
// (several firms, and one firm at a time) return exactly the records the
// branches read from the canonical tables.
func TestProfileRecords_MatchSources(t *testing.T) {
	store := scratchStore(t)
	ctx := context.Background()
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	firms := synth.Firms(11, 40)
	var rows []firmbridge.Row
	for _, rec := range synth.Generate(11, firms, 30, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), synth.Options{Duplicates: 0.05}) {
		rs, err := reg.Normalize(ctx, rec.Envelope, rec.Envelope.ObservedAt.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rs...)
	}
	if err := store.InsertRows(ctx, rows); err != nil {
		t.Fatal(err)
	}
	// Corrections, written the way a provider's would land: the same
	// record with a higher version.
	for _, sql := range []string{
		`INSERT INTO tax_vat_returns SELECT uscc, taxpayer_name, period_start, period_end, period_kind, filed_on, 1 - late, sales + 1, output_tax, input_tax,
			tax_payable + 2, flags, record_id, source, schema_version, observed_at + 86400, ingested_at, version + 86400000000 FROM tax_vat_returns WHERE cityHash64(record_id) % 5 = 0`,
		`INSERT INTO ops_electricity SELECT uscc, account_no, month, consumption_kwh * 2, NULL, arrears, record_id, source, schema_version, observed_at + 60,
			ingested_at, version + 60000000 FROM ops_electricity WHERE cityHash64(record_id) % 4 = 0`,
		`INSERT INTO firms SELECT uscc, concat(name, '（更正）'), record_id, source, schema_version, observed_at + 3600, ingested_at, version + 3600000000
			FROM firms WHERE cityHash64(uscc) % 3 = 0 LIMIT 1 BY uscc`,
		`INSERT INTO patent_legal_events SELECT application_no, event_date, event_code, event_text, from_party_name, from_party_uscc, to_party_name, '` +
			firms[0].USCC + `', uscc, record_id, source, schema_version, observed_at + 60, ingested_at, version + 60000000
			FROM patent_legal_events WHERE event_code = 'TRANSFER' LIMIT 1`,
		// Events that name a firm, or are keyed to it, on an application
		// the firm neither applied for nor was transferred.
		`INSERT INTO patent_legal_events SELECT application_no, event_date, 'PLEDGE', event_text, from_party_name, from_party_uscc, '某某银行', '` +
			firms[3].USCC + `', uscc, concat(record_id, '-P'), source, schema_version, observed_at, ingested_at, version FROM patent_legal_events
			WHERE application_no NOT IN (SELECT application_no FROM patent_applicants WHERE uscc = '` + firms[3].USCC + `') LIMIT 1`,
		`INSERT INTO patent_legal_events SELECT application_no, event_date, 'LAPSE', event_text, '', '', '', '', '` +
			firms[5].USCC + `', concat(record_id, '-L'), source, schema_version, observed_at, ingested_at, version FROM patent_legal_events
			WHERE application_no NOT IN (SELECT application_no FROM patent_applicants WHERE uscc = '` + firms[5].USCC + `') LIMIT 1`,
		`INSERT INTO patent_applicants SELECT '` + firms[1].USCC + `', application_no, applicant_name, position, record_id, source, schema_version, observed_at, ingested_at, version
			FROM patent_applicants WHERE uscc = '` + firms[2].USCC + `' LIMIT 1`,
	} {
		if err := store.Conn().Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	r := ProfileReader{Store: store}
	// No floor, one within the data, one after all of it (identities
	// are never cut).
	for _, f := range []time.Time{{}, time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)} {
		var g profileGroup
		var usccs []string
		for _, firm := range firms {
			g.add(firm.USCC, f)
			usccs = append(usccs, firm.USCC)
		}
		// The canonical tables, read as the branches read them.
		taxSQL, taxArgs := union(firmBranches(taxBranches, usccs, g.having()))
		wantTax, err := r.query(ctx, "tax", taxSQL, taxArgs)
		if err != nil {
			t.Fatal(err)
		}
		opsSQL, opsArgs := union(firmBranches(opsBranches, usccs, g.having()))
		wantOps, err := r.query(ctx, "operations", opsSQL, opsArgs)
		if err != nil {
			t.Fatal(err)
		}
		us := set(usccs)
		candidates := cond{appliedBy + " OR " + transferNames, []any{us, us, us}}
		p, pa := patentBranch.sql(candidates, nil)
		e, ea := eventBranch.sql(cond{candidates.sql + " OR uscc IN ? OR from_party_uscc IN ? OR to_party_uscc IN ?", []any{us, us, us, us, us, us}}, nil)
		patSQL, patArgs := union([]string{p, e}, [][]any{pa, ea})
		wantPat, err := r.query(ctx, "patents", patSQL, patArgs)
		if err != nil {
			t.Fatal(err)
		}
		wantIDs, err := r.canonicalIdentities(ctx, usccs)
		if err != nil {
			t.Fatal(err)
		}
		if (f.Year() < 2030 && (len(wantTax) == 0 || len(wantOps) == 0)) || len(wantPat) == 0 || len(wantIDs) != len(firms) {
			t.Fatalf("fixture too thin: %d tax, %d operations, %d patent records, %d identities", len(wantTax), len(wantOps), len(wantPat), len(wantIDs))
		}

		// Several firms at once.
		ids, tax, pat, ops, err := r.readGroups(ctx, usccs, g, g, g)
		if err != nil {
			t.Fatal(err)
		}
		same(t, fmt.Sprintf("tax of all firms, floor %v", f), recordTexts(tax), recordTexts(wantTax))
		same(t, fmt.Sprintf("operations of all firms, floor %v", f), recordTexts(ops), recordTexts(wantOps))
		same(t, fmt.Sprintf("patents of all firms, floor %v", f), recordTexts(pat), recordTexts(wantPat))
		same(t, "identities of all firms", identityTexts(ids), identityTexts(wantIDs))

		// One firm at a time: each firm's share of the same records. Patent
		// records are not per firm: compare them with the canonical
		// tables read for that firm alone.
		for _, firm := range firms {
			ids, tax, pat, ops, err := r.readFirm(ctx, firm.USCC, f, true, true, true)
			if err != nil {
				t.Fatal(err)
			}
			mine := func(recs []record) []record {
				var out []record
				for _, x := range recs {
					if x.firm == firm.USCC {
						out = append(out, x)
					}
				}
				return out
			}
			same(t, "tax of "+firm.USCC, recordTexts(tax), recordTexts(mine(wantTax)))
			same(t, "operations of "+firm.USCC, recordTexts(ops), recordTexts(mine(wantOps)))
			same(t, "identity of "+firm.USCC, identityTexts(ids), identityTexts(map[string]*firmbridge.FirmIdentity{firm.USCC: wantIDs[firm.USCC]}))
			one := set([]string{firm.USCC})
			c1 := cond{appliedBy + " OR " + transferNames, []any{one, one, one}}
			p1, pa1 := patentBranch.sql(c1, nil)
			e1, ea1 := eventBranch.sql(cond{c1.sql + " OR uscc IN ? OR from_party_uscc IN ? OR to_party_uscc IN ?", []any{one, one, one, one, one, one}}, nil)
			sql1, args1 := union([]string{p1, e1}, [][]any{pa1, ea1})
			want1, err := r.query(ctx, "patents", sql1, args1)
			if err != nil {
				t.Fatal(err)
			}
			same(t, "patents of "+firm.USCC, recordTexts(pat), recordTexts(want1))
		}
	}
}

// canonicalIdentities reads identities from the firms table, as
// identities did before migration 0007.
func (s ProfileReader) canonicalIdentities(ctx context.Context, usccs []string) (map[string]*firmbridge.FirmIdentity, error) {
	rows, err := s.conn.Query(ctx, `SELECT uscc, argMax(name, version), argMax(source, version), argMax(observed_at, version)
		FROM firms WHERE uscc IN ? GROUP BY uscc`, set(usccs))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*firmbridge.FirmIdentity{}
	for rows.Next() {
		var f firmbridge.FirmIdentity
		var asOf time.Time
		if err := rows.Scan(&f.USCC, &f.Name, &f.Source, &asOf); err != nil {
			return nil, err
		}
		asOf = asOf.UTC()
		f.AsOf, f.Sources = &asOf, []string{f.Source}
		out[f.USCC] = &f
	}
	return out, rows.Err()
}

func identityTexts(m map[string]*firmbridge.FirmIdentity) []string {
	var out []string
	for u, f := range m {
		if f == nil {
			out = append(out, u+"|<nil>")
			continue
		}
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%s|%v", u, f.USCC, f.Name, f.Source, f.AsOf.Format(time.RFC3339), f.Sources))
	}
	slices.Sort(out)
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	t.Errorf("%s: %d records, want %d\nmissing: %s\nextra: %s", what, len(got), len(want), strings.Join(missing[:min(len(missing), 3)], "\n  "), strings.Join(extra[:min(len(extra), 3)], "\n  "))
}
