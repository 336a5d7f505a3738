package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/schema"
)

// The regulator's queries (schema.AuditQueries), each timed against a
// baseline in the same run: a bare count() of the rows its range selects,
// on the table its filter reads (audit_events, or audit_events_by_firm for
// a firm), without FINAL, run right after it with the same parameters.
// Every query carries a query id, so system.query_log tells how many rows
// and bytes each read.

// auditBenchParams are one run's parameters.
type auditBenchParams struct {
	org, uscc string
	from, to  time.Time
	period    string
	chain     uint32
	fromSeq   uint64
	toSeq     uint64
}

// auditBenchQuery is a measured query type.
type auditBenchQuery struct {
	name     string
	baseName string // what the baseline counts
	table    string // the baseline's table
	byOrg    bool   // the baseline filters by institution
	byFirm   bool   // or by firm
	bySeq    bool   // or by chain and sequence numbers
	runs     int    // 0: --runs
	params   func(rng *rand.Rand) auditBenchParams
	// run performs the query once or, for later pages, several times; it
	// calls timed around each measured call.
	run func(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error
}

// auditBenchSample is one measured call.
type auditBenchSample struct {
	took time.Duration
	rows int // rows returned
	id   string
}

// auditBenchStat is one query type's results.
type auditBenchStat struct {
	q                  *auditBenchQuery
	calls, base        []auditBenchSample
	readRows, readMB   []float64 // per call, from the query log
	baseRows, baseMB   []float64
	queriesPerCall     float64
	stoppedEarly       bool
	failed             error // the error that stopped this query type
	failedID           string
	failedQueries      []auditBenchLogged
	exampleParams      auditBenchParams
	logged, baseLogged int
	perQuery           [][]auditBenchLogged // per logged call, its queries in order
}

func auditBenchQueries(ctx context.Context, store *schema.Store, m *auditBenchModel, key *api.SigningKey) ([]*auditBenchQuery, error) {
	end := m.cfg.end
	audits := schema.AuditStore{Store: store}
	heads := make([]uint64, m.cfg.chains)
	for c := range heads {
		st, _, err := audits.ChainHead(ctx, uint32(c))
		if err != nil {
			return nil, err
		}
		heads[c] = st.LastSeq
	}
	keys := firmbridge.AuditKeys{key.ID: key.Public}
	// Whole months among the last twelve before end's month.
	month := func(rng *rand.Rand) (time.Time, time.Time) {
		first := time.Date(end.Year(), end.Month(), 1, 0, 0, 0, 0, time.UTC)
		from := first.AddDate(0, -1-rng.IntN(12), 0)
		return from, from.AddDate(0, 1, 0)
	}
	bank := func(rng *rand.Rand) string { return m.banks[pickCum(m.bankCum, rng)] }
	orgMonth := func(rng *rand.Rand) auditBenchParams {
		from, to := month(rng)
		return auditBenchParams{org: bank(rng), from: from, to: to}
	}
	page := func(f schema.AuditFilter) func(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
		return func(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
			f.Org, f.USCC, f.From, f.To = p.org, p.uscc, p.from, p.to
			return timed(func(ctx context.Context) (int, error) {
				rows, _, err := q.AuditEvents(ctx, f, nil, api100)
				return len(rows), err
			})
		}
	}
	return []*auditBenchQuery{
		{name: "events of an institution in a month, first page of 100", baseName: "count() of the institution's month", table: "audit_events", byOrg: true,
			params: orgMonth, run: page(schema.AuditFilter{})},
		{name: "events of an institution in a month, pages 2 to 5 (cursor)", baseName: "count() of the institution's month", table: "audit_events", byOrg: true,
			params: orgMonth,
			run: func(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
				f := schema.AuditFilter{Org: p.org, From: p.from, To: p.to}
				_, next, err := q.AuditEvents(ctx, f, nil, api100)
				if err != nil {
					return err
				}
				for range 4 {
					if next == nil {
						return nil
					}
					after := next
					if err := timed(func(ctx context.Context) (int, error) {
						var rows []schema.AuditEventRow
						rows, next, err = q.AuditEvents(ctx, f, after, api100)
						return len(rows), err
					}); err != nil {
						return err
					}
				}
				return nil
			}},
		{name: "denials consent_required of an institution in a month, first page", baseName: "count() of the institution's month", table: "audit_events", byOrg: true,
			params: orgMonth, run: page(schema.AuditFilter{Decision: firmbridge.DecisionDeny, Reason: "consent_required"})},
		{name: "events of a firm in 12 months, first page (audit_events_by_firm)", baseName: "count() of the firm's 12 months", table: "audit_events_by_firm", byFirm: true,
			params: func(rng *rand.Rand) auditBenchParams {
				return auditBenchParams{uscc: m.firms[pickCum(m.firmCum, rng)], from: end.AddDate(-1, 0, 0), to: end}
			}, run: page(schema.AuditFilter{})},
		{name: "stats of an institution, 12 months by month", baseName: "count() of the institution's 12 months", table: "audit_events", byOrg: true,
			params: func(rng *rand.Rand) auditBenchParams {
				return auditBenchParams{org: bank(rng), from: end.AddDate(-1, 0, 0), to: end, period: schema.PeriodMonth}
			}, run: auditBenchStatsRun},
		{name: "stats of every institution, 1 month", baseName: "count() of the month", table: "audit_events",
			params: func(rng *rand.Rand) auditBenchParams {
				from, to := month(rng)
				return auditBenchParams{from: from, to: to, period: schema.PeriodMonth}
			}, run: auditBenchStatsRun},
		{name: "stats of every institution, 12 months by month (the API's default range)", baseName: "count() of the 12 months", table: "audit_events", runs: 5,
			params: func(rng *rand.Rand) auditBenchParams {
				return auditBenchParams{from: end.AddDate(-1, 0, 0), to: end, period: schema.PeriodMonth}
			}, run: auditBenchStatsRun},
		{name: "alerts of every institution, one day (4 rules; the API's default range)", baseName: "count() of the day", table: "audit_events",
			params: func(rng *rand.Rand) auditBenchParams {
				to := end.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
				return auditBenchParams{from: to.Add(-24 * time.Hour), to: to}
			}, run: auditBenchAlertsRun},
		{name: "alerts of an institution, 31 days (4 rules)", baseName: "count() of the institution's 31 days", table: "audit_events", byOrg: true,
			params: func(rng *rand.Rand) auditBenchParams {
				to := end.Add(-time.Duration(rng.IntN(180*24)) * time.Hour)
				return auditBenchParams{org: bank(rng), from: to.Add(-31 * 24 * time.Hour), to: to}
			}, run: auditBenchAlertsRun},
		{name: "export of an institution's month (every row streamed)", baseName: "count() of the institution's month", table: "audit_events", byOrg: true,
			params: orgMonth, run: auditBenchExportRun},
		{name: "export of a month, every institution (every row streamed)", baseName: "count() of the month", table: "audit_events", runs: 5,
			params: func(rng *rand.Rand) auditBenchParams {
				from, to := month(rng)
				return auditBenchParams{from: from, to: to}
			}, run: auditBenchExportRun},
		{name: "verify 10,000 events of a chain from the digest before them (GET /v1/audit/verify)", baseName: "count() of the chain's range", table: "audit_events", bySeq: true,
			params: func(rng *rand.Rand) auditBenchParams {
				c := rng.IntN(len(heads))
				span := max(heads[c]/3, 1) // the last year, about
				to := heads[c] - uint64(rng.Int64N(int64(span)))
				return auditBenchParams{chain: uint32(c), fromSeq: max(to, 10_000) - 9_999, toSeq: max(to, 10_000)}
			},
			run: func(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
				return timed(func(ctx context.Context) (int, error) {
					rep, err := audits.VerifyAuditChain(ctx, p.chain, p.fromSeq, p.toSeq, keys)
					if err != nil {
						return 0, err
					}
					if !rep.OK() {
						return rep.Events, fmt.Errorf("chain %d does not verify: %v", p.chain, rep.Failure)
					}
					return rep.Events, nil
				})
			}},
	}, nil
}

// api100 is the API's default page size.
const api100 = 100

func auditBenchStatsRun(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
	return timed(func(ctx context.Context) (int, error) {
		st, err := q.AuditStats(ctx, schema.AuditStatsQuery{From: p.from, To: p.to, Period: p.period, Org: p.org})
		return len(st), err
	})
}

func auditBenchAlertsRun(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
	return timed(func(ctx context.Context) (int, error) {
		a, err := q.AuditAlerts(ctx, schema.AuditAlertQuery{From: p.from, To: p.to, Org: p.org}, schema.AlertRules{})
		return len(a), err
	})
}

func auditBenchExportRun(ctx context.Context, q schema.AuditQueries, p auditBenchParams, timed func(func(ctx context.Context) (int, error)) error) error {
	return timed(func(ctx context.Context) (int, error) {
		rows, err := q.OpenAuditEvents(ctx, schema.AuditFilter{Org: p.org, From: p.from, To: p.to})
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
		}
		return n, rows.Err()
	})
}

// baseline is the bare count of the rows the query's range selects.
func (q *auditBenchQuery) baseline(ctx context.Context, store *schema.Store, p auditBenchParams) (int, error) {
	where, args := "occurred_at >= ? AND occurred_at < ?", []any{p.from, p.to}
	switch {
	case q.bySeq:
		where, args = "chain = ? AND seq >= ? AND seq <= ?", []any{p.chain, p.fromSeq, p.toSeq}
	case q.byOrg:
		where, args = "org = ? AND "+where, append([]any{p.org}, args...)
	case q.byFirm:
		where, args = "uscc = ? AND "+where, append([]any{p.uscc}, args...)
	}
	var n uint64
	if err := store.Conn().QueryRow(ctx, "SELECT count() FROM "+q.table+" WHERE "+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("baseline of %s: %w", q.name, err)
	}
	return int(n), nil
}

// measureAuditQueries runs each query type up to runs times (or as many as
// fit in limit, at least 3), each run followed by its baseline, and reads
// what each call read from system.query_log.
func measureAuditQueries(ctx context.Context, store *schema.Store, m *auditBenchModel, key *api.SigningKey, runs int, limit time.Duration, seed int64, runID string,
	say func(string, ...any)) ([]*auditBenchStat, error) {
	q := schema.AuditQueries{Store: store}
	var stats []*auditBenchStat
	queries, err := auditBenchQueries(ctx, store, m, key)
	if err != nil {
		return nil, err
	}
	for qi, qt := range queries {
		st := &auditBenchStat{q: qt}
		stats = append(stats, st)
		rng := rand.New(rand.NewPCG(uint64(seed), uint64(1000+qi)))
		n := runs
		if qt.runs > 0 {
			n = min(n, qt.runs)
		}
		started := time.Now()
		say("%s: up to %d runs", qt.name, n)
		for r := range n {
			if r >= 3 && time.Since(started) > limit {
				st.stoppedEarly = true
				break
			}
			p := qt.params(rng)
			if r == 0 {
				st.exampleParams = p
			}
			call := 0
			timed := func(f func(ctx context.Context) (int, error)) error {
				id := fmt.Sprintf("bench-audit-%s-%d-%d-%d", runID, qi, r, call)
				call++
				t0 := time.Now()
				rows, err := f(newAuditBenchIDContext(ctx, id))
				s := auditBenchSample{took: time.Since(t0), rows: rows, id: id}
				if err != nil {
					st.failedID = id
					return fmt.Errorf("bench audit: %s: %w", qt.name, err)
				}
				st.calls = append(st.calls, s)
				return nil
			}
			if err := qt.run(ctx, q, p, timed); err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				// A query the server refuses (a memory limit, say) is a
				// finding: it is reported, and the others are measured.
				st.failed = err
				say("%v", err)
				break
			}
			id := fmt.Sprintf("bench-audit-%s-%d-%d-base", runID, qi, r)
			t0 := time.Now()
			rows, err := qt.baseline(newAuditBenchIDContext(ctx, id), store, p)
			if err != nil {
				return nil, fmt.Errorf("bench audit: %w", err)
			}
			st.base = append(st.base, auditBenchSample{took: time.Since(t0), rows: rows, id: id})
		}
	}
	if err := readAuditBenchLog(ctx, store, runID, stats); err != nil {
		say("query log: %v (the read columns stay empty)", err)
	}
	return stats, nil
}

// auditBenchIDContext gives every query run with it a query id of its
// own, id-1, id-2, ..., and turns the query log on for it. A call of
// schema.AuditQueries may run several queries with one context, and
// ClickHouse refuses a query id while a query with it still runs, so one
// id per call would not do.
type auditBenchIDContext struct {
	context.Context
	id string
	n  *atomic.Int64
}

func newAuditBenchIDContext(ctx context.Context, id string) context.Context {
	base := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	return &auditBenchIDContext{Context: base, id: id, n: new(atomic.Int64)}
}

// Value answers the driver's question for its query options with a fresh
// query id; every other key is the parent's.
func (c *auditBenchIDContext) Value(key any) any {
	v := c.Context.Value(key)
	if _, ok := v.(clickhouse.QueryOptions); !ok {
		return v
	}
	id := c.id + "-" + strconv.FormatInt(c.n.Add(1), 10)
	return clickhouse.Context(c.Context, clickhouse.WithQueryID(id)).Value(key)
}

// auditBenchLogged is one query as system.query_log has it.
type auditBenchLogged struct {
	n               int // its place among the call's queries
	ms              uint64
	readRows, readB uint64
	memory          uint64
	query           string
}

// readAuditBenchLog fills in rows and bytes read per call from
// system.query_log (queries finished or failed; a call's several queries
// summed) and keeps each query's figures.
func readAuditBenchLog(ctx context.Context, store *schema.Store, runID string, stats []*auditBenchStat) error {
	if err := store.Conn().Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		time.Sleep(8 * time.Second) // the log's flush interval is 7.5 s
	}
	byCall := map[string][]auditBenchLogged{}
	rows, err := store.Conn().Query(ctx, `SELECT query_id, query_duration_ms, read_rows, read_bytes, memory_usage, substring(query, 1, 400)
		FROM system.query_log WHERE event_date >= yesterday() AND type IN (2, 4) AND startsWith(query_id, ?)`, "bench-audit-"+runID+"-")
	if err != nil {
		return fmt.Errorf("read system.query_log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var l auditBenchLogged
		if err := rows.Scan(&id, &l.ms, &l.readRows, &l.readB, &l.memory, &l.query); err != nil {
			return fmt.Errorf("read system.query_log: %w", err)
		}
		cut := strings.LastIndexByte(id, '-')
		l.n, _ = strconv.Atoi(id[cut+1:])
		l.query = strings.Join(strings.Fields(l.query), " ")
		byCall[id[:cut]] = append(byCall[id[:cut]], l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read system.query_log: %w", err)
	}
	for _, st := range stats {
		var queries int
		for _, c := range st.calls {
			ls, ok := byCall[c.id]
			if !ok {
				continue
			}
			slices.SortFunc(ls, func(a, b auditBenchLogged) int { return a.n - b.n })
			var r, b uint64
			for _, l := range ls {
				r += l.readRows
				b += l.readB
			}
			st.readRows = append(st.readRows, float64(r))
			st.readMB = append(st.readMB, float64(b)/1e6)
			st.perQuery = append(st.perQuery, ls)
			queries += len(ls)
			st.logged++
		}
		if st.logged > 0 {
			st.queriesPerCall = float64(queries) / float64(st.logged)
		}
		if ls, ok := byCall[st.failedID]; ok && st.failedID != "" {
			slices.SortFunc(ls, func(a, b auditBenchLogged) int { return a.n - b.n })
			st.failedQueries = ls
		}
		for _, c := range st.base {
			if ls, ok := byCall[c.id]; ok && len(ls) > 0 {
				st.baseRows = append(st.baseRows, float64(ls[0].readRows))
				st.baseMB = append(st.baseMB, float64(ls[0].readB)/1e6)
				st.baseLogged++
			}
		}
	}
	return nil
}

func auditBenchQuantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func auditBenchMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func auditBenchDurations(s []auditBenchSample) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.took
	}
	slices.Sort(out)
	return out
}

// auditBenchTable renders the measures: latency of each query type and
// of its baseline, their ratios, and what each read.
func auditBenchTable(stats []*auditBenchStat) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	ratio := func(a, b time.Duration) string {
		if b <= 0 {
			return ""
		}
		return fmt.Sprintf("%.1f", float64(a)/float64(b))
	}
	human := func(v float64) string {
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.0fk", v/1e3)
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	var b strings.Builder
	b.WriteString("| query | calls | rows returned (median) | p50 ms | p99 ms | baseline p50 ms | baseline p99 ms | p50 vs baseline | p99 vs baseline | rows read (median) | MB read (median) | baseline rows read |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, st := range stats {
		c, bs := auditBenchDurations(st.calls), auditBenchDurations(st.base)
		returned := make([]float64, len(st.calls))
		for i, s := range st.calls {
			returned[i] = float64(s.rows)
		}
		name := st.q.name
		if st.stoppedEarly {
			name += " (stopped at the time limit)"
		}
		if st.failed != nil {
			name += fmt.Sprintf(" — **failed after %d calls: %s**", len(c), auditBenchShortError(st.failed))
		}
		read, mb, baseRead := "", "", ""
		if st.logged > 0 {
			read, mb = human(auditBenchMedian(st.readRows)), fmt.Sprintf("%.1f", auditBenchMedian(st.readMB))
			if st.queriesPerCall > 1 {
				read += fmt.Sprintf(" in %.0f queries", st.queriesPerCall)
			}
		}
		if st.baseLogged > 0 {
			baseRead = human(auditBenchMedian(st.baseRows))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, len(c), human(auditBenchMedian(returned)),
			ms(auditBenchQuantile(c, 0.5)), ms(auditBenchQuantile(c, 0.99)), ms(auditBenchQuantile(bs, 0.5)), ms(auditBenchQuantile(bs, 0.99)),
			ratio(auditBenchQuantile(c, 0.5), auditBenchQuantile(bs, 0.5)), ratio(auditBenchQuantile(c, 0.99), auditBenchQuantile(bs, 0.99)),
			read, mb, baseRead)
	}
	return b.String()
}

// auditBenchDetail renders, per query type, each of a call's queries as
// the query log has it: medians of duration, rows and bytes read and
// memory, with the start of the query's text.
func auditBenchDetail(stats []*auditBenchStat) string {
	var b strings.Builder
	b.WriteString("| query | # | server ms (median) | rows read (median) | MB read (median) | memory MB (median) | query text (start) |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|---|\n")
	for _, st := range stats {
		most := 0
		for _, ls := range st.perQuery {
			most = max(most, len(ls))
		}
		for k := range most {
			var ms, rows, mb, mem []float64
			text := ""
			for _, ls := range st.perQuery {
				if k < len(ls) {
					ms = append(ms, float64(ls[k].ms))
					rows = append(rows, float64(ls[k].readRows))
					mb = append(mb, float64(ls[k].readB)/1e6)
					mem = append(mem, float64(ls[k].memory)/1e6)
					text = ls[k].query
				}
			}
			text = auditBenchSnippet(text)
			name := st.q.name
			if k > 0 {
				name = "″"
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f | %.1f | %.1f | `%s` |\n", name, k+1, auditBenchMedian(ms), auditBenchMedian(rows),
				auditBenchMedian(mb), auditBenchMedian(mem), text)
		}
		for k, l := range st.failedQueries {
			name := st.q.name + " — the failed call"
			if k > 0 {
				name = "″"
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f | %.1f | `%s` |\n", name, k+1, l.ms, l.readRows, float64(l.readB)/1e6, float64(l.memory)/1e6,
				auditBenchSnippet(l.query))
		}
	}
	return b.String()
}

// auditBenchShortError keeps the server's message of an error.
func auditBenchShortError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "message: "); i >= 0 {
		msg = msg[i+len("message: "):]
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return strings.ReplaceAll(msg, "|", "/")
}

// auditBenchSnippet is the start of a query's text, for a table cell.
func auditBenchSnippet(text string) string {
	if r := []rune(text); len(r) > 110 {
		text = string(r[:110]) + "…"
	}
	return strings.ReplaceAll(text, "|", "\\|")
}
