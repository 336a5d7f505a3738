package schema

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/firmbridge/firmbridge"
)

// kindFirm is the kind of the identity rows in profile_records, and
// kindLink that of the patent_links rows readFirm reads with them.
const (
	kindFirm = "firm"
	kindLink = "patent.link"
)

// onePoint ends the query of one firm: a few hundred rows gain nothing
// from a second thread, and under load the threads only compete.
const onePoint = " SETTINGS use_uncompressed_cache = 1, max_threads = 1"

// readFirm reads one firm's profile records in one query, since for a
// few hundred rows a query's own cost outweighs its reading, and
// ClickHouse's GROUP BY doubles it. The query returns every version of
// the firm's rows: its identity, tax and operations records from
// profile_records, and for the patent scope the applications patent_links
// ties it to and their records from patent_records. Go then does what the
// queries of several firms do in SQL: keep the rows the conditions of
// patentProfileRecords select, take each record at its newest version
// (argMax), and apply the floor to the newest version's date (HAVING).
func (s ProfileReader) readFirm(ctx context.Context, uscc string, floor time.Time, tax, patent, ops bool) (
	identities map[string]*firmbridge.FirmIdentity, taxRecs, patentRecs, opsRecs []record, err error) {
	kinds := []string{kindFirm}
	if tax {
		kinds = append(kinds, taxKinds...)
	}
	if ops {
		kinds = append(kinds, opsKinds...)
	}
	q := "SELECT rkind, rkey, data_date, fields, [emptyArrayString()] AS lists, source, observed_at, version FROM profile_records WHERE uscc = ? AND rkind IN ?"
	args := []any{uscc, set(kinds)}
	if patent {
		q += " UNION ALL SELECT '" + kindLink + "' AS rkind, application_no AS rkey, toDate('1970-01-01') AS data_date, [toString(link)] AS fields, " +
			"[emptyArrayString()] AS lists, '' AS source, toDateTime(0) AS observed_at, toUInt64(0) AS version FROM patent_links WHERE firm = ?" +
			" UNION ALL SELECT rkind, rkey, data_date, fields, lists, source, observed_at, version FROM patent_records " +
			"WHERE application_no IN (SELECT application_no FROM patent_links WHERE firm = ?)"
		args = append(args, uscc, uscc)
	}
	rows, err := s.conn.Query(ctx, q+onePoint, args...)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read profile: %w", err)
	}
	defer rows.Close()
	type version struct {
		r record
		v uint64
	}
	var all []version
	candidates := map[string]bool{} // appliedBy or transferNames (patentProfileRecords)
	for rows.Next() {
		var x version
		if err := rows.Scan(&x.r.kind, &x.r.key, &x.r.date, &x.r.fields, &x.r.lists, &x.r.source, &x.r.observed, &x.v); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("read profile: %w", err)
		}
		if x.r.kind == kindLink {
			if slices.Contains(x.r.fields, "1") || slices.Contains(x.r.fields, "2") {
				candidates[x.r.key] = true
			}
			continue
		}
		x.r.date = day(x.r.date)
		all = append(all, x)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("read profile: %w", err)
	}
	// Rows kept (the WHERE of the queries), then the newest of each record.
	newest := map[[2]string]int{}
	var order [][2]string
	for i, x := range all {
		switch x.r.kind {
		case kindPatent:
			if !candidates[x.r.key] {
				continue
			}
		case kindEvent:
			if len(x.r.fields) != len(eventBranch.fields) {
				return nil, nil, nil, nil, fmt.Errorf("read profile: event %s has %d fields, want %d", x.r.key, len(x.r.fields), len(eventBranch.fields))
			}
			// application_no, then the firm it is keyed to, the parties' USCCs.
			if f := x.r.fields; !candidates[f[0]] && f[7] != uscc && f[4] != uscc && f[6] != uscc {
				continue
			}
		}
		k := [2]string{x.r.kind, x.r.key}
		if j, ok := newest[k]; !ok {
			newest[k] = i
			order = append(order, k)
		} else if x.v > all[j].v {
			newest[k] = i
		}
	}
	identities = map[string]*firmbridge.FirmIdentity{}
	for _, k := range order {
		r := all[newest[k]].r
		switch {
		case r.kind == kindFirm:
			if len(r.fields) != 1 {
				return nil, nil, nil, nil, fmt.Errorf("read profile: identity of %s has %d fields, want 1", uscc, len(r.fields))
			}
			asOf := r.observed.UTC()
			identities[uscc] = &firmbridge.FirmIdentity{USCC: uscc, Name: r.fields[0], Source: r.source, AsOf: &asOf, Sources: []string{r.source}}
		case r.kind == kindPatent || r.kind == kindEvent:
			patentRecs = append(patentRecs, r)
		case !floor.IsZero() && r.date.Before(floor):
		case slices.Contains(taxKinds, r.kind):
			r.firm = uscc
			taxRecs = append(taxRecs, r)
		case slices.Contains(opsKinds, r.kind):
			r.firm = uscc
			opsRecs = append(opsRecs, r)
		}
	}
	return identities, taxRecs, patentRecs, opsRecs, nil
}
