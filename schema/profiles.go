package schema

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// ProfileReader is the firmbridge.ProfileReader on ClickHouse.
//
// Every record is read at its newest version (argMax(..., version)
// grouped by record id), which is exact before ClickHouse merged replaced
// rows away. A record's columns come as one Array(String) taken whole at
// the newest version, so that a column that became NULL in a correction
// is not skipped the way argMax skips NULL values, and so that all kinds
// of record share one shape (see record).
//
// Profiles read the copies of migration 0007 (profile_records,
// patent_records, patent_links: the same rows, sorted by firm or
// application in small granules, each already in that shape): one query
// per domain for several firms, one query for one firm. Detail listings
// read the canonical tables, one UNION ALL branch per table (see branch).
type ProfileReader struct{ *Store }

var _ firmbridge.ProfileReader = ProfileReader{}

// Record kinds: the source each canonical table holds.
const (
	kindVAT         = "tax.vat_return"
	kindCIT         = "tax.cit_annual"
	kindRating      = "tax.credit_rating"
	kindArrears     = "tax.arrears"
	kindPatent      = "patent.bibliographic"
	kindEvent       = "patent.legal_event"
	kindElectricity = "ops.electricity"
	kindWater       = "ops.water"
	kindSocial      = "ops.social_insurance"
	kindCustoms     = "ops.customs"
)

// record is one canonical record at its newest version, in the shape all
// branches share: the firm it is read for ("" when the firm is found from
// the fields, as for patents), its key (record id, or application number),
// its data date, its columns as strings ("" for NULL), its array columns,
// and its lineage.
type record struct {
	kind     string
	firm     string
	key      string
	date     time.Time
	fields   []string
	lists    [][]string
	source   string
	observed time.Time
}

// branch is one table's SELECT in a domain's UNION ALL.
type branch struct {
	kind   string
	table  string
	firm   string   // expression of the firm column ('' when mapped in Go)
	key    string   // the record key column
	date   string   // expression of the data date
	fields []string // String expressions (see str and opt)
	lists  []string // Array(String) expressions
}

// str renders a column as text; opt renders a Nullable column as text,
// "" for NULL.
func str(col string) string { return "toString(" + col + ")" }
func opt(col string) string { return "ifNull(toString(" + col + "), '')" }

// cond is a SQL condition with its arguments.
type cond struct {
	sql  string
	args []any
}

// sql renders the branch with where filtering rows (it must only name
// columns that every version of a record shares, such as the firm or the
// key, so no newer version is filtered out) and having filtering records
// at their newest version.
func (b branch) sql(where cond, having []cond) (string, []any) {
	lists := "[emptyArrayString()]"
	if len(b.lists) > 0 {
		lists = "[" + strings.Join(b.lists, ", ") + "]"
	}
	var q strings.Builder
	fmt.Fprintf(&q, "SELECT '%s' AS rkind, %s AS firm, %s AS rkey, argMax(%s, version) AS d, argMax([%s], version) AS f, "+
		"argMax(%s, version) AS l, argMax(source, version) AS src, argMax(observed_at, version) AS obs FROM %s WHERE %s GROUP BY firm, rkey",
		b.kind, b.firm, b.key, b.date, strings.Join(b.fields, ", "), lists, b.table, where.sql)
	args := slices.Clone(where.args)
	for i, h := range having {
		if i == 0 {
			q.WriteString(" HAVING ")
		} else {
			q.WriteString(" AND ")
		}
		q.WriteString("(" + h.sql + ")")
		args = append(args, h.args...)
	}
	return q.String(), args
}

// union joins branches into one query.
func union(parts []string, args [][]any) (string, []any) {
	var all []any
	for _, a := range args {
		all = append(all, a...)
	}
	return strings.Join(parts, " UNION ALL "), all
}

// set renders values for IN.
func set(values []string) clickhouse.GroupSet {
	v := make([]any, len(values))
	for i, s := range values {
		v[i] = s
	}
	return clickhouse.GroupSet{Value: v}
}

func dateArg(t time.Time) string { return t.Format(dateLayout) }

const (
	dateLayout  = "2006-01-02"
	monthLayout = "2006-01"
)

// pointRead ends every profile query. A profile reads a few rows from
// many columns; without the uncompressed block cache each column costs a
// whole block read and decompressed, which dominates such short queries.
const pointRead = " SETTINGS use_uncompressed_cache = 1"

// query runs a records query.
func (s ProfileReader) query(ctx context.Context, what, sql string, args []any) ([]record, error) {
	rows, err := s.conn.Query(ctx, sql+pointRead, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.kind, &r.firm, &r.key, &r.date, &r.fields, &r.lists, &r.source, &r.observed); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		r.date = day(r.date)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// day is t's calendar date at midnight UTC, whatever zone the driver gave.
func day(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }

// fieldReader decodes a record's fields, keeping the first error.
type fieldReader struct {
	r   record
	err error
}

func (fr *fieldReader) text(i int) string {
	if i >= len(fr.r.fields) {
		fr.fail(i, "missing")
		return ""
	}
	return fr.r.fields[i]
}

func (fr *fieldReader) fail(i int, msg string) {
	if fr.err == nil {
		fr.err = fmt.Errorf("record %s %s: field %d %s", fr.r.kind, fr.r.key, i, msg)
	}
}

func (fr *fieldReader) dec(i int) decimal.Decimal {
	s := fr.text(i)
	d, err := decimal.NewFromString(s)
	if err != nil {
		fr.fail(i, fmt.Sprintf("%q is not a decimal", s))
	}
	return d
}

// optDec is nil for NULL ("").
func (fr *fieldReader) optDec(i int) *decimal.Decimal {
	if fr.text(i) == "" {
		return nil
	}
	d := fr.dec(i)
	return &d
}

func (fr *fieldReader) date(i int) time.Time {
	s := fr.text(i)
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		fr.fail(i, fmt.Sprintf("%q is not a date", s))
	}
	return t
}

func (fr *fieldReader) optDate(i int) *time.Time {
	if fr.text(i) == "" {
		return nil
	}
	t := fr.date(i)
	return &t
}

func (fr *fieldReader) int(i int) int {
	s := fr.text(i)
	n, err := strconv.Atoi(s)
	if err != nil {
		fr.fail(i, fmt.Sprintf("%q is not an integer", s))
	}
	return n
}

func (fr *fieldReader) list(i int) []string {
	if i >= len(fr.r.lists) {
		fr.fail(i, "list missing")
		return nil
	}
	return fr.r.lists[i]
}

// yuan formats money and other decimal quantities with two decimals.
func yuan(d decimal.Decimal) string { return d.StringFixed(2) }

func optYuan(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := yuan(*d)
	return &s
}

// ratio formats a ratio with four decimals.
func ratio(d decimal.Decimal) *string {
	s := d.StringFixed(4)
	return &s
}

// lineage collects a section's as_of (newest observation) and sources.
type lineage struct {
	asOf    time.Time
	sources map[string]bool
}

func (l *lineage) add(r record) {
	if r.observed.After(l.asOf) {
		l.asOf = r.observed
	}
	if l.sources == nil {
		l.sources = map[string]bool{}
	}
	l.sources[r.source] = true
}

func (l *lineage) merge(o lineage) {
	if o.asOf.After(l.asOf) {
		l.asOf = o.asOf
	}
	for s := range o.sources {
		if l.sources == nil {
			l.sources = map[string]bool{}
		}
		l.sources[s] = true
	}
}

func (l lineage) result() (*time.Time, []string) {
	sources := []string{}
	for s := range l.sources {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	if l.asOf.IsZero() {
		return nil, sources
	}
	t := l.asOf.UTC()
	return &t, sources
}

// dataFloor is the first date a reader may see (firmbridge.DataFloor).
func dataFloor(dataFrom time.Time) time.Time { return firmbridge.DataFloor(&dataFrom) }

// profileGroup is the firms one domain query reads, and the earliest
// floor among them (zero when any firm has no floor); each firm's own
// floor is applied again in Go.
type profileGroup struct {
	usccs []string
	floor time.Time
	has   bool
}

func (g *profileGroup) add(uscc string, floor time.Time) {
	if !g.has || floor.Before(g.floor) {
		g.floor = floor
	}
	g.has = true
	g.usccs = append(g.usccs, uscc)
}

func (g *profileGroup) having() []cond {
	if g.floor.IsZero() {
		return nil
	}
	return []cond{{"d >= toDate(?)", []any{dateArg(g.floor)}}}
}

// ReadProfiles implements firmbridge.ProfileReader with a fixed number
// of queries whatever the number of firms. Several firms take at most
// four, run concurrently: identities, tax, patents (applications and
// legal events together), operations. One firm, the API's profile, takes
// one (readFirm).
func (s ProfileReader) ReadProfiles(ctx context.Context, reqs []firmbridge.ProfileRequest) (map[string]*firmbridge.Profile, error) {
	floors := map[string]time.Time{}
	scopes := map[string][]string{}
	var all []string
	var taxG, patentG, opsG profileGroup
	for _, r := range reqs {
		if _, dup := floors[r.USCC]; dup {
			continue
		}
		floor := dataFloor(r.DataFrom)
		floors[r.USCC], scopes[r.USCC] = floor, r.Scopes
		all = append(all, r.USCC)
		if slices.Contains(r.Scopes, firmbridge.ScopeTax) {
			taxG.add(r.USCC, floor)
		}
		if slices.Contains(r.Scopes, firmbridge.ScopePatent) {
			patentG.add(r.USCC, floor)
		}
		if slices.Contains(r.Scopes, firmbridge.ScopeOperations) {
			opsG.add(r.USCC, floor)
		}
	}
	out := map[string]*firmbridge.Profile{}
	if len(all) == 0 {
		return out, nil
	}

	var (
		identities                   map[string]*firmbridge.FirmIdentity
		taxRecs, patentRecs, opsRecs []record
		err                          error
	)
	if len(all) == 1 {
		identities, taxRecs, patentRecs, opsRecs, err = s.readFirm(ctx, all[0], floors[all[0]], taxG.has, patentG.has, opsG.has)
	} else {
		identities, taxRecs, patentRecs, opsRecs, err = s.readGroups(ctx, all, taxG, patentG, opsG)
	}
	if err != nil {
		return nil, err
	}

	taxBy := byFirm(taxRecs)
	opsBy := byFirm(opsRecs)
	var pd *patentData
	if patentG.has {
		if pd, err = decodePatents(patentRecs); err != nil {
			return nil, err
		}
	}
	for _, u := range all {
		p := &firmbridge.Profile{USCC: u, Identity: identities[u]}
		if p.Identity == nil {
			p.Identity = &firmbridge.FirmIdentity{USCC: u, Sources: []string{}}
		}
		floor := floors[u]
		var td *taxData
		if slices.Contains(scopes[u], firmbridge.ScopeTax) {
			if td, err = decodeTax(since(taxBy[u], floor)); err != nil {
				return nil, err
			}
			p.Tax = td.section(floor)
		}
		if slices.Contains(scopes[u], firmbridge.ScopePatent) {
			p.Patents = pd.section(u, floor)
		}
		if slices.Contains(scopes[u], firmbridge.ScopeOperations) {
			od, err := decodeOps(since(opsBy[u], floor))
			if err != nil {
				return nil, err
			}
			p.Operations = od.section(floor)
			p.Consistency = consistency(td, od, floor)
		}
		out[u] = p
	}
	return out, nil
}

// readGroups reads the profiles of several firms: identities and one
// query per domain asked for, run concurrently.
func (s ProfileReader) readGroups(ctx context.Context, all []string, taxG, patentG, opsG profileGroup) (
	identities map[string]*firmbridge.FirmIdentity, taxRecs, patentRecs, opsRecs []record, firstErr error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	run(func() (err error) { identities, err = s.identities(ctx, all); return err })
	if taxG.has {
		run(func() (err error) { taxRecs, err = s.taxRecords(ctx, taxG.usccs, taxG.having()); return err })
	}
	if patentG.has {
		run(func() (err error) { patentRecs, err = s.patentProfileRecords(ctx, patentG); return err })
	}
	if opsG.has {
		run(func() (err error) { opsRecs, err = s.opsRecords(ctx, opsG.usccs, opsG.having()); return err })
	}
	wg.Wait()
	return identities, taxRecs, patentRecs, opsRecs, firstErr
}

func byFirm(recs []record) map[string][]record {
	m := map[string][]record{}
	for _, r := range recs {
		m[r.firm] = append(m[r.firm], r)
	}
	return m
}

// since keeps the records dated on or after floor.
func since(recs []record, floor time.Time) []record {
	if floor.IsZero() {
		return recs
	}
	var out []record
	for _, r := range recs {
		if !r.date.Before(floor) {
			out = append(out, r)
		}
	}
	return out
}

// identities reads the newest name of each firm (the firms table, as
// copied to profile_records with kind 'firm' and fields [name]).
func (s ProfileReader) identities(ctx context.Context, usccs []string) (map[string]*firmbridge.FirmIdentity, error) {
	rows, err := s.conn.Query(ctx, `SELECT uscc, argMax(fields[1], version), argMax(source, version), argMax(observed_at, version)
		FROM profile_records WHERE uscc IN ? AND rkind = 'firm' GROUP BY uscc`+pointRead, set(usccs))
	if err != nil {
		return nil, fmt.Errorf("read firms: %w", err)
	}
	defer rows.Close()
	out := map[string]*firmbridge.FirmIdentity{}
	for rows.Next() {
		var f firmbridge.FirmIdentity
		var asOf time.Time
		if err := rows.Scan(&f.USCC, &f.Name, &f.Source, &asOf); err != nil {
			return nil, fmt.Errorf("read firms: %w", err)
		}
		asOf = asOf.UTC()
		f.AsOf, f.Sources = &asOf, []string{f.Source}
		out[f.USCC] = &f
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read firms: %w", err)
	}
	return out, nil
}

// page runs a detail listing over branches: records after q.After in the
// order date descending, kind, key; limit+1 rows tell whether a next page
// exists.
func (s ProfileReader) page(ctx context.Context, what string, parts []string, args [][]any, q firmbridge.RecordQuery) ([]record, *firmbridge.RecordKey, error) {
	inner, all := union(parts, args)
	sql := "SELECT rkind, firm, rkey, d, f, l, src, obs FROM (" + inner + ")"
	if a := q.After; a != nil {
		sql += " WHERE d < toDate(?) OR (d = toDate(?) AND (rkind > ? OR (rkind = ? AND rkey > ?)))"
		all = append(all, a.Date, a.Date, a.Kind, a.Kind, a.Key)
	}
	sql += " ORDER BY d DESC, rkind, rkey LIMIT ?"
	all = append(all, q.Limit+1)
	recs, err := s.query(ctx, what, sql, all)
	if err != nil {
		return nil, nil, err
	}
	var next *firmbridge.RecordKey
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
		last := recs[len(recs)-1]
		next = &firmbridge.RecordKey{Date: last.date.Format(dateLayout), Kind: last.kind, Key: last.key}
	}
	return recs, next, nil
}

// recordFilters are the HAVING conditions of a detail listing: the
// consent's floor and the query's date range.
func recordFilters(q firmbridge.RecordQuery) []cond {
	var hs []cond
	if f := dataFloor(q.DataFrom); !f.IsZero() {
		hs = append(hs, cond{"d >= toDate(?)", []any{dateArg(f)}})
	}
	if !q.From.IsZero() {
		hs = append(hs, cond{"d >= toDate(?)", []any{dateArg(q.From)}})
	}
	if !q.To.IsZero() {
		hs = append(hs, cond{"d <= toDate(?)", []any{dateArg(q.To)}})
	}
	return hs
}

// chosen returns the branches q.Sources selects (all when empty).
func chosen(branches []branch, sources []string) []branch {
	if len(sources) == 0 {
		return branches
	}
	var out []branch
	for _, b := range branches {
		if slices.Contains(sources, b.kind) {
			out = append(out, b)
		}
	}
	return out
}

// kinds lists the record kinds of branches.
func kinds(branches []branch) []string {
	out := make([]string, len(branches))
	for i, b := range branches {
		out[i] = b.kind
	}
	return out
}

// firmRecords reads the records of the given kinds of firms from
// profile_records, each at its newest version, as branch.sql reads them
// from their tables (having filters records at their newest version).
func (s ProfileReader) firmRecords(ctx context.Context, what string, kinds, usccs []string, having []cond) ([]record, error) {
	var q strings.Builder
	q.WriteString("SELECT rkind, uscc AS firm, rkey, argMax(data_date, version) AS d, argMax(fields, version) AS f, [emptyArrayString()] AS l, " +
		"argMax(source, version) AS src, argMax(observed_at, version) AS obs FROM profile_records WHERE uscc IN ? AND rkind IN ? GROUP BY rkind, firm, rkey")
	args := []any{set(usccs), set(kinds)}
	for i, h := range having {
		if i == 0 {
			q.WriteString(" HAVING ")
		} else {
			q.WriteString(" AND ")
		}
		q.WriteString("(" + h.sql + ")")
		args = append(args, h.args...)
	}
	return s.query(ctx, what, q.String(), args)
}

// firmBranches renders branches keyed by uscc for the given firms.
func firmBranches(branches []branch, usccs []string, having []cond) ([]string, [][]any) {
	var parts []string
	var args [][]any
	for _, b := range branches {
		sql, a := b.sql(cond{"uscc IN ?", []any{set(usccs)}}, having)
		parts = append(parts, sql)
		args = append(args, a)
	}
	return parts, args
}
