package schema

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/firmbridge/firmbridge"
)

// AuditQueries reads the sealed audit log (migration 0008) for regulators
// and for the parties of an access: filtered listings, a streamed export,
// statistics per institution and period, and alert rules. Every read uses
// FINAL, so a batch the sealer wrote twice after a crash counts once.
// Definitions of every number are in docs/AUDIT.md.
type AuditQueries struct{ *Store }

// AuditFilter selects access events. Empty fields do not filter; From is
// inclusive and To exclusive, zero means unbounded.
type AuditFilter struct {
	Org      string // the institution (an enterprise's org is its USCC)
	USCC     string // the firm
	Role     string
	Decision string // firmbridge.DecisionAllow or DecisionDeny
	Reason   string
	From, To time.Time
	// ExcludeRoles drops the events of these roles.
	ExcludeRoles []string
}

// AuditEventKey is an event's position in the listings: newest first by
// time, then by chain and sequence number, which are unique.
type AuditEventKey struct {
	OccurredAt time.Time
	Chain      uint32
	Seq        uint64
}

// AuditEventRow is a sealed access event with its place in its chain.
type AuditEventRow struct {
	Chain uint32 `json:"chain"`
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	firmbridge.AccessEvent
}

// Key returns the row's position.
func (r *AuditEventRow) Key() AuditEventKey {
	return AuditEventKey{OccurredAt: r.OccurredAt, Chain: r.Chain, Seq: r.Seq}
}

const auditRowColumns = "chain, seq, hash, event_id, request_id, occurred_at, subject, role, org, uscc, scopes, purpose, " +
	"consent_id, decision, reason, status, client_addr, method, path"

// table picks the copy whose sorting key serves the filter: by firm when
// only the firm is known, by institution otherwise (migration 0008).
func (f *AuditFilter) table() string {
	if f.USCC != "" && f.Org == "" {
		return "audit_events_by_firm"
	}
	return "audit_events"
}

// where renders the filter; after, when set, keeps the events past that
// key in the given order.
func (f *AuditFilter) where(after *AuditEventKey, newestFirst bool) (string, []any) {
	conds := []string{"1"}
	var args []any
	add := func(cond string, vals ...any) {
		conds = append(conds, cond)
		args = append(args, vals...)
	}
	for _, c := range []struct{ col, v string }{{"org", f.Org}, {"uscc", f.USCC}, {"role", f.Role}, {"decision", f.Decision}, {"reason", f.Reason}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if !f.From.IsZero() {
		add("occurred_at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		add("occurred_at < ?", f.To.UTC())
	}
	if len(f.ExcludeRoles) > 0 {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(f.ExcludeRoles)), ", ")
		vals := make([]any, len(f.ExcludeRoles))
		for i, r := range f.ExcludeRoles {
			vals[i] = r
		}
		add("role NOT IN ("+marks+")", vals...)
	}
	if after != nil {
		// The plain bound lets the sorting key skip granules; the rest
		// breaks ties within one second.
		t := after.OccurredAt.UTC()
		op, eq := "<", "<="
		if !newestFirst {
			op, eq = ">", ">="
		}
		add("occurred_at "+eq+" ? AND (occurred_at "+op+" ? OR (occurred_at = ? AND (chain "+op+" ? OR (chain = ? AND seq "+op+" ?))))",
			t, t, t, after.Chain, after.Chain, after.Seq)
	}
	return strings.Join(conds, " AND "), args
}

func orderBy(newestFirst bool) string {
	if newestFirst {
		return " ORDER BY occurred_at DESC, chain DESC, seq DESC"
	}
	return " ORDER BY occurred_at, chain, seq"
}

// AuditEvents returns up to limit events matching f, newest first, after
// the key of the previous page (nil for the first). next is the key to
// continue from, nil on the last page.
func (q AuditQueries) AuditEvents(ctx context.Context, f AuditFilter, after *AuditEventKey, limit int) (rows []AuditEventRow, next *AuditEventKey, err error) {
	limit = max(limit, 1)
	where, args := f.where(after, true)
	it, err := q.open(ctx, "SELECT "+auditRowColumns+" FROM "+f.table()+" FINAL WHERE "+where+orderBy(true)+
		" LIMIT "+strconv.Itoa(limit+1), args)
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	for it.Next() {
		rows = append(rows, *it.Row())
	}
	if err := it.Err(); err != nil {
		return nil, nil, err
	}
	if len(rows) > limit {
		rows = rows[:limit]
		k := rows[limit-1].Key()
		next = &k
	}
	return rows, next, nil
}

// AuditEventRows streams events; see OpenAuditEvents.
type AuditEventRows struct {
	rows driver.Rows
	row  AuditEventRow
	err  error
}

// OpenAuditEvents starts reading every event matching f, oldest first.
// The query has been accepted when it returns, so a caller can still
// refuse the request cleanly; the caller must Close the rows.
func (q AuditQueries) OpenAuditEvents(ctx context.Context, f AuditFilter) (*AuditEventRows, error) {
	where, args := f.where(nil, false)
	return q.open(ctx, "SELECT "+auditRowColumns+" FROM "+f.table()+" FINAL WHERE "+where+orderBy(false), args)
}

func (q AuditQueries) open(ctx context.Context, query string, args []any) (*AuditEventRows, error) {
	rows, err := q.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	return &AuditEventRows{rows: rows}, nil
}

// Next reads the next event; false at the end or on an error (see Err).
func (r *AuditEventRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	var row AuditEventRow
	e := &row.AccessEvent
	var status uint16
	if err := r.rows.Scan(&row.Chain, &row.Seq, &row.Hash, &e.EventID, &e.RequestID, &e.OccurredAt, &e.Subject, &e.Role, &e.Org,
		&e.USCC, &e.Scopes, &e.Purpose, &e.ConsentID, &e.Decision, &e.Reason, &status, &e.ClientAddr, &e.Method, &e.Path); err != nil {
		r.err = fmt.Errorf("read audit events: %w", err)
		return false
	}
	e.OccurredAt, e.Status = e.OccurredAt.UTC(), int(status)
	if e.Scopes == nil {
		e.Scopes = []string{}
	}
	r.row = row
	return true
}

// Row is the event Next read.
func (r *AuditEventRows) Row() *AuditEventRow { return &r.row }

// Err is the error that ended the stream, if any.
func (r *AuditEventRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		return fmt.Errorf("read audit events: %w", err)
	}
	return nil
}

// Close releases the query.
func (r *AuditEventRows) Close() error { return r.rows.Close() }

// Statistics periods.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
)

// AuditStatsQuery asks for statistics per institution and period.
type AuditStatsQuery struct {
	// From is moved back to the start of its period (UTC); To is
	// exclusive and must not lie in the future, or consents that have not
	// expired yet would count as expired.
	From, To time.Time
	Period   string // PeriodDay or PeriodMonth
	Org      string // one institution; empty for all
}

// AuditStats are one institution's numbers in one period; docs/AUDIT.md
// defines each.
type AuditStats struct {
	Institution     string            `json:"institution"`
	PeriodStart     time.Time         `json:"period_start"`
	PeriodEnd       time.Time         `json:"period_end"`
	Requests        uint64            `json:"requests"`
	Denials         uint64            `json:"denials"`
	DenialsByReason map[string]uint64 `json:"denials_by_reason"`
	DistinctFirms   uint64            `json:"distinct_firms"`
	ConsentsGranted uint64            `json:"consents_granted"`
	ConsentsRevoked uint64            `json:"consents_revoked"`
	ConsentsExpired uint64            `json:"consents_expired"`
	ConsentsActive  uint64            `json:"consents_active_at_end"`
}

// PeriodStart returns the start of the period (UTC) that holds t.
func PeriodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	if period == PeriodMonth {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func nextPeriod(period string, t time.Time) time.Time {
	if period == PeriodMonth {
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// bucket is the SQL for the start of the period holding the DateTime x, in UTC.
func bucket(period, x string) string {
	if period == PeriodMonth {
		return "toDateTime(toStartOfMonth(" + x + ", 'UTC'), 'UTC')"
	}
	return "toStartOfDay(" + x + ", 'UTC')"
}

// consentSpans is one row per consent that was ever in force, newest state
// (FINAL), with when it was granted and the span in which it was active:
// valid_from up to its revocation or expiry. A consent request counts from
// its approval; one that expired unanswered (EXPIRED, with a requested
// receipt and no approved one) never was in force. Approval moves
// valid_from to the approval time or later (consent_requests.go), so
// valid_from is always the start of the active span.
const consentSpans = `
SELECT grantee, status, valid_from, expires_at, updated_at,
       if(approved = 1, approved_at, created_at) AS granted_at,
       if(status = 'REVOKED', least(updated_at, expires_at), expires_at) AS end_at
FROM (SELECT id, grantee, status, valid_from, expires_at, created_at, updated_at FROM consents FINAL
      WHERE status IN ('ACTIVE', 'REVOKED', 'EXPIRED') %[1]s)
ANY LEFT JOIN (
      SELECT consent_id AS id, max(event = 'requested') AS requested, max(event = 'approved') AS approved,
             maxIf(issued_at, event = 'approved') AS approved_at
      FROM consent_receipts FINAL WHERE state != 'void' AND event IN ('requested', 'approved') %[1]s GROUP BY consent_id
) USING (id)
WHERE NOT (status = 'EXPIRED' AND requested = 1 AND approved = 0)`

// AuditStats computes the statistics of every institution with anything
// to report in [From, To), one entry per institution and period, ordered
// by institution and period. Events without an institution (failed
// authentications) belong to none.
func (q AuditQueries) AuditStats(ctx context.Context, sq AuditStatsQuery) ([]AuditStats, error) {
	if sq.Period != PeriodMonth {
		sq.Period = PeriodDay
	}
	from, to := PeriodStart(sq.Period, sq.From), sq.To.UTC()
	if !to.After(from) {
		return []AuditStats{}, nil
	}
	type key struct {
		org string
		p   int64
	}
	out := map[key]*AuditStats{}
	get := func(org string, p time.Time) *AuditStats {
		k := key{org, p.Unix()}
		st, ok := out[k]
		if !ok {
			st = &AuditStats{Institution: org, PeriodStart: p.UTC(), DenialsByReason: map[string]uint64{}}
			out[k] = st
		}
		return st
	}
	orgCond, orgArgs := "", []any{}
	if sq.Org != "" {
		orgCond, orgArgs = " AND org = ?", []any{sq.Org}
	}

	// Requests, denials and firms.
	args := append([]any{from, to}, orgArgs...)
	rows, err := q.conn.Query(ctx, "SELECT org, "+bucket(sq.Period, "occurred_at")+` AS p, count(), countIf(decision = 'deny'), uniqExactIf(uscc, uscc != '')
		FROM audit_events FINAL WHERE occurred_at >= ? AND occurred_at < ? AND org != ''`+orgCond+` GROUP BY org, p`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit stats: requests: %w", err)
	}
	err = scanAll(rows, func() error {
		var org string
		var p time.Time
		var n, denials, firms uint64
		if err := rows.Scan(&org, &p, &n, &denials, &firms); err != nil {
			return err
		}
		st := get(org, p)
		st.Requests, st.Denials, st.DistinctFirms = n, denials, firms
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit stats: requests: %w", err)
	}
	rows, err = q.conn.Query(ctx, "SELECT org, "+bucket(sq.Period, "occurred_at")+` AS p, reason, count()
		FROM audit_events FINAL WHERE occurred_at >= ? AND occurred_at < ? AND org != '' AND decision = 'deny'`+orgCond+` GROUP BY org, p, reason`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit stats: denials: %w", err)
	}
	err = scanAll(rows, func() error {
		var org, reason string
		var p time.Time
		var n uint64
		if err := rows.Scan(&org, &p, &reason, &n); err != nil {
			return err
		}
		get(org, p).DenialsByReason[reason] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit stats: denials: %w", err)
	}

	// Consents: what happened in each period, and the active count by
	// running sums from the count at From.
	grantee := ""
	if sq.Org != "" {
		grantee = "AND grantee = ?"
	}
	spans := fmt.Sprintf(consentSpans, grantee)
	spanArgs := append(slices.Clone(orgArgs), orgArgs...) // the grantee filter appears on both sides of the join
	baseline := map[string]int64{}
	rows, err = q.conn.Query(ctx, "SELECT grantee, count() FROM ("+spans+") WHERE valid_from < end_at AND valid_from < ? AND end_at >= ? GROUP BY grantee",
		append(slices.Clone(spanArgs), from, from)...)
	if err != nil {
		return nil, fmt.Errorf("audit stats: active consents: %w", err)
	}
	err = scanAll(rows, func() error {
		var g string
		var n uint64
		if err := rows.Scan(&g, &n); err != nil {
			return err
		}
		baseline[g] = int64(n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit stats: active consents: %w", err)
	}
	// Each consent yields up to five dated facts; only those in [from, to)
	// are counted, each in the period that holds it.
	rows, err = q.conn.Query(ctx, "SELECT grantee, tupleElement(e, 1) AS kind, "+bucket(sq.Period, "tupleElement(e, 2)")+` AS p, count()
		FROM (`+spans+`)
		ARRAY JOIN [('granted', granted_at, 1),
		            ('revoked', updated_at, toUInt8(status = 'REVOKED')),
		            ('expired', expires_at, toUInt8(status != 'REVOKED')),
		            ('start', valid_from, toUInt8(valid_from < end_at)),
		            ('end', end_at, toUInt8(valid_from < end_at))] AS e
		WHERE tupleElement(e, 3) = 1 AND tupleElement(e, 2) >= ? AND tupleElement(e, 2) < ?
		GROUP BY grantee, kind, p`, append(slices.Clone(spanArgs), from, to)...)
	if err != nil {
		return nil, fmt.Errorf("audit stats: consents: %w", err)
	}
	delta := map[key]int64{}
	err = scanAll(rows, func() error {
		var g, kind string
		var p time.Time
		var n uint64
		if err := rows.Scan(&g, &kind, &p, &n); err != nil {
			return err
		}
		switch kind {
		case "granted":
			get(g, p).ConsentsGranted = n
		case "revoked":
			get(g, p).ConsentsRevoked = n
		case "expired":
			get(g, p).ConsentsExpired = n
		case "start":
			delta[key{g, p.Unix()}] += int64(n)
		case "end":
			delta[key{g, p.Unix()}] -= int64(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit stats: consents: %w", err)
	}
	grantees := map[string]bool{}
	for g := range baseline {
		grantees[g] = true
	}
	for k := range delta {
		grantees[k.org] = true
	}
	for g := range grantees {
		active := baseline[g]
		for p := from; p.Before(to); p = nextPeriod(sq.Period, p) {
			active += delta[key{g, p.Unix()}]
			if active > 0 {
				get(g, p).ConsentsActive = uint64(active)
			} else if st, ok := out[key{g, p.Unix()}]; ok {
				st.ConsentsActive = 0
			}
		}
	}

	list := make([]AuditStats, 0, len(out))
	for _, st := range out {
		st.PeriodEnd = nextPeriod(sq.Period, st.PeriodStart)
		if st.PeriodEnd.After(to) {
			st.PeriodEnd = to
		}
		list = append(list, *st)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Institution != list[j].Institution {
			return list[i].Institution < list[j].Institution
		}
		return list[i].PeriodStart.Before(list[j].PeriodStart)
	})
	return list, nil
}

// scanAll calls scan for every row, then closes the rows.
func scanAll(rows driver.Rows, scan func() error) error {
	defer rows.Close()
	for rows.Next() {
		if err := scan(); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Alert rule names.
const (
	RuleDenialRate          = "denial_rate"
	RuleFirmsWithoutConsent = "firms_without_consent"
	RuleAfterRevocation     = "access_after_revocation"
	RuleBurst               = "burst"
)

// AlertRuleNames lists the rules in the order they are evaluated.
var AlertRuleNames = []string{RuleDenialRate, RuleFirmsWithoutConsent, RuleAfterRevocation, RuleBurst}

// AlertRules are the thresholds of the alert rules; docs/AUDIT.md defines
// each rule exactly. A zero field takes its default (DefaultAlertRules).
type AlertRules struct {
	// Roles are the roles whose events the rules look at.
	Roles []string
	// DenialRate: in a window, denials / requests > MaxRate with at least
	// MinRequests requests.
	DenialRateWindow      time.Duration
	DenialRateMinRequests int
	DenialRateMax         float64
	// FirmsWithoutConsent: in a window, at least this many distinct firms
	// refused with consent_required.
	FirmsWithoutConsentWindow time.Duration
	FirmsWithoutConsentMin    int
	// AfterRevocation: at least this many data requests after the
	// revocation of a consent, on DataPaths (prefixes).
	AfterRevocationMin int
	DataPaths          []string
	// Burst: requests in an hour > BurstFactor × the median of the hourly
	// counts over BurstBaseline before it, and at least BurstMinRequests.
	BurstFactor      float64
	BurstBaseline    time.Duration
	BurstMinRequests int
	// Examples is how many example event ids an alert carries.
	Examples int
}

// DefaultAlertRules are the thresholds used where AlertRules leaves a zero.
var DefaultAlertRules = AlertRules{
	Roles:                     []string{firmbridge.RoleBank},
	DenialRateWindow:          time.Hour,
	DenialRateMinRequests:     20,
	DenialRateMax:             0.3,
	FirmsWithoutConsentWindow: 24 * time.Hour,
	FirmsWithoutConsentMin:    10,
	AfterRevocationMin:        1,
	DataPaths:                 []string{"/v1/firms/", "/v1/profiles/batch"},
	BurstFactor:               5,
	BurstBaseline:             7 * 24 * time.Hour,
	BurstMinRequests:          50,
	Examples:                  5,
}

// WithDefaults fills the zero fields from DefaultAlertRules.
func (r AlertRules) WithDefaults() AlertRules {
	d := DefaultAlertRules
	if len(r.Roles) == 0 {
		r.Roles = d.Roles
	}
	if r.DenialRateWindow <= 0 {
		r.DenialRateWindow = d.DenialRateWindow
	}
	if r.DenialRateMinRequests <= 0 {
		r.DenialRateMinRequests = d.DenialRateMinRequests
	}
	if r.DenialRateMax <= 0 {
		r.DenialRateMax = d.DenialRateMax
	}
	if r.FirmsWithoutConsentWindow <= 0 {
		r.FirmsWithoutConsentWindow = d.FirmsWithoutConsentWindow
	}
	if r.FirmsWithoutConsentMin <= 0 {
		r.FirmsWithoutConsentMin = d.FirmsWithoutConsentMin
	}
	if r.AfterRevocationMin <= 0 {
		r.AfterRevocationMin = d.AfterRevocationMin
	}
	if len(r.DataPaths) == 0 {
		r.DataPaths = d.DataPaths
	}
	if r.BurstFactor <= 0 {
		r.BurstFactor = d.BurstFactor
	}
	if r.BurstBaseline < time.Hour {
		r.BurstBaseline = d.BurstBaseline
	}
	if r.BurstMinRequests <= 0 {
		r.BurstMinRequests = d.BurstMinRequests
	}
	if r.Examples <= 0 {
		r.Examples = d.Examples
	}
	// Windows are whole seconds: they are computed on DateTime seconds.
	r.DenialRateWindow = max(r.DenialRateWindow.Truncate(time.Second), time.Second)
	r.FirmsWithoutConsentWindow = max(r.FirmsWithoutConsentWindow.Truncate(time.Second), time.Second)
	r.BurstBaseline = r.BurstBaseline.Truncate(time.Hour)
	return r
}

// AuditAlertQuery asks for the alerts of [From, To).
type AuditAlertQuery struct {
	From, To time.Time
	Org      string   // one institution; empty for all
	Rules    []string // the rules to evaluate; empty for all
}

// AuditAlert is one finding of one rule.
type AuditAlert struct {
	Rule        string    `json:"rule"`
	Institution string    `json:"institution"`
	USCC        string    `json:"uscc,omitempty"`
	ConsentID   string    `json:"consent_id,omitempty"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Numbers are the rule's measurements and the thresholds they crossed.
	Numbers         map[string]float64 `json:"numbers"`
	ExampleEventIDs []string           `json:"example_event_ids"`
	Message         string             `json:"message"`
}

// AuditAlerts evaluates the rules over [From, To) and returns what they
// found, rule by rule in AlertRuleNames order, then by window and
// institution.
func (q AuditQueries) AuditAlerts(ctx context.Context, aq AuditAlertQuery, rules AlertRules) ([]AuditAlert, error) {
	r := rules.WithDefaults()
	from, to := aq.From.UTC(), aq.To.UTC()
	out := []AuditAlert{}
	if !to.After(from) {
		return out, nil
	}
	want := func(name string) bool { return len(aq.Rules) == 0 || slices.Contains(aq.Rules, name) }
	// A windowed rule looks at every window that overlaps [From, To),
	// from its start up to To.
	base := func(window time.Duration, extra string, extraArgs ...any) (string, []any) {
		return eventWhere(alignDown(from, window), to, aq.Org, r.Roles, extra, extraArgs)
	}
	type step struct {
		name string
		run  func() ([]AuditAlert, error)
	}
	steps := []step{
		{RuleDenialRate, func() ([]AuditAlert, error) { return q.denialRateAlerts(ctx, r, base) }},
		{RuleFirmsWithoutConsent, func() ([]AuditAlert, error) { return q.firmsWithoutConsentAlerts(ctx, r, base) }},
		{RuleAfterRevocation, func() ([]AuditAlert, error) { return q.afterRevocationAlerts(ctx, r, base, to) }},
		{RuleBurst, func() ([]AuditAlert, error) { return q.burstAlerts(ctx, r, aq.Org, from, to) }},
	}
	for _, s := range steps {
		if !want(s.name) {
			continue
		}
		found, err := s.run()
		if err != nil {
			return nil, fmt.Errorf("audit alerts: %s: %w", s.name, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// windowed is the SQL for the start of the window of the given length
// (epoch-aligned, so windows are the same whatever the range asked).
func windowed(d time.Duration) string {
	secs := strconv.FormatInt(int64(d/time.Second), 10)
	return "toDateTime(intDiv(toUInt32(occurred_at), " + secs + ") * " + secs + ", 'UTC')"
}

type whereFunc func(window time.Duration, extra string, extraArgs ...any) (string, []any)

// alignDown returns the start of the epoch-aligned window of length d
// holding t; d = 0 returns t.
func alignDown(t time.Time, d time.Duration) time.Time {
	secs := int64(d / time.Second)
	if secs <= 0 {
		return t.UTC()
	}
	u := t.Unix()
	return time.Unix(u-((u%secs)+secs)%secs, 0).UTC()
}

// eventWhere selects the events of [from, to) that the rules look at:
// those of an institution (org set), by one of roles, and extra.
func eventWhere(from, to time.Time, org string, roles []string, extra string, extraArgs []any) (string, []any) {
	w := "occurred_at >= ? AND occurred_at < ? AND org != ''"
	args := []any{from, to}
	if org != "" {
		w += " AND org = ?"
		args = append(args, org)
	}
	w += " AND role IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(roles)), ", ") + ")"
	for _, role := range roles {
		args = append(args, role)
	}
	return w + extra, append(args, extraArgs...)
}

func (q AuditQueries) denialRateAlerts(ctx context.Context, r AlertRules, base whereFunc) ([]AuditAlert, error) {
	where, args := base(r.DenialRateWindow, "")
	n := strconv.Itoa(r.Examples)
	rows, err := q.conn.Query(ctx, "SELECT org, "+windowed(r.DenialRateWindow)+` AS w, count() AS requests, countIf(decision = 'deny') AS denials,
		groupArrayIf(`+n+`)(event_id, decision = 'deny')
		FROM audit_events FINAL WHERE `+where+`
		GROUP BY org, w HAVING requests >= ? AND denials > requests * ?
		ORDER BY w, org`, append(args, uint64(r.DenialRateMinRequests), r.DenialRateMax)...)
	if err != nil {
		return nil, err
	}
	var out []AuditAlert
	err = scanAll(rows, func() error {
		var a AuditAlert
		var requests, denials uint64
		if err := rows.Scan(&a.Institution, &a.WindowStart, &requests, &denials, &a.ExampleEventIDs); err != nil {
			return err
		}
		rate := float64(denials) / float64(requests)
		a.Rule, a.WindowStart = RuleDenialRate, a.WindowStart.UTC()
		a.WindowEnd = a.WindowStart.Add(r.DenialRateWindow)
		a.Numbers = map[string]float64{"requests": float64(requests), "denials": float64(denials), "denial_rate": rate,
			"threshold": r.DenialRateMax, "min_requests": float64(r.DenialRateMinRequests)}
		a.Message = fmt.Sprintf("%s: %d of %d requests denied (%.0f%%, threshold %.0f%%) in %s", a.Institution, denials, requests,
			100*rate, 100*r.DenialRateMax, r.DenialRateWindow)
		out = append(out, a)
		return nil
	})
	return out, err
}

func (q AuditQueries) firmsWithoutConsentAlerts(ctx context.Context, r AlertRules, base whereFunc) ([]AuditAlert, error) {
	where, args := base(r.FirmsWithoutConsentWindow, " AND decision = 'deny' AND reason = 'consent_required' AND uscc != ''")
	n := strconv.Itoa(r.Examples)
	rows, err := q.conn.Query(ctx, "SELECT org, "+windowed(r.FirmsWithoutConsentWindow)+` AS w, uniqExact(uscc) AS firms, count(),
		groupArray(`+n+`)(event_id)
		FROM audit_events FINAL WHERE `+where+`
		GROUP BY org, w HAVING firms >= ?
		ORDER BY w, org`, append(args, uint64(r.FirmsWithoutConsentMin))...)
	if err != nil {
		return nil, err
	}
	var out []AuditAlert
	err = scanAll(rows, func() error {
		var a AuditAlert
		var firms, denials uint64
		if err := rows.Scan(&a.Institution, &a.WindowStart, &firms, &denials, &a.ExampleEventIDs); err != nil {
			return err
		}
		a.Rule, a.WindowStart = RuleFirmsWithoutConsent, a.WindowStart.UTC()
		a.WindowEnd = a.WindowStart.Add(r.FirmsWithoutConsentWindow)
		a.Numbers = map[string]float64{"firms": float64(firms), "denials": float64(denials), "threshold": float64(r.FirmsWithoutConsentMin)}
		a.Message = fmt.Sprintf("%s: %d distinct firms queried without consent (threshold %d) in %s", a.Institution, firms,
			r.FirmsWithoutConsentMin, r.FirmsWithoutConsentWindow)
		out = append(out, a)
		return nil
	})
	return out, err
}

// afterRevocationAlerts joins data requests to the revoked consents of the
// same institution and firm. A request counts against a revoked consent C
// when it came at or after C's revocation and either names C (served or
// refused under it) or was refused consent_revoked for C's purpose; each
// request counts once, against the latest such revocation before it.
func (q AuditQueries) afterRevocationAlerts(ctx context.Context, r AlertRules, base whereFunc, to time.Time) ([]AuditAlert, error) {
	var paths []string
	var pathArgs []any
	for _, p := range r.DataPaths {
		paths = append(paths, "startsWith(path, ?)")
		pathArgs = append(pathArgs, p)
	}
	where, args := base(0, " AND uscc != '' AND ("+strings.Join(paths, " OR ")+")", pathArgs...)
	n := strconv.Itoa(r.Examples)
	// Aliases differ from column names: ClickHouse would otherwise read a
	// column inside an aggregate as the aggregate of the same name.
	query := `SELECT ev_org, ev_uscc, cid, rev_at, count() AS n, min(ev_at) AS first_at, max(ev_at), groupArray(` + n + `)(event_id)
		FROM (
			SELECT event_id, any(org) AS ev_org, any(uscc) AS ev_uscc, any(occurred_at) AS ev_at,
			       argMax(revoked_id, revoked_at) AS cid, max(revoked_at) AS rev_at
			FROM (
				SELECT event_id, occurred_at, org, uscc, consent_id, purpose, decision, reason
				FROM audit_events FINAL WHERE ` + where + `
			) ALL INNER JOIN (
				SELECT grantee AS org, uscc, id AS revoked_id, purpose AS revoked_purpose, updated_at AS revoked_at
				FROM consents FINAL WHERE status = 'REVOKED' AND updated_at < ?
			) USING (org, uscc)
			WHERE occurred_at >= revoked_at
			  AND (consent_id = revoked_id OR (consent_id = '' AND decision = 'deny' AND reason = 'consent_revoked' AND purpose = revoked_purpose))
			GROUP BY event_id
		)
		GROUP BY ev_org, ev_uscc, cid, rev_at HAVING n >= ?
		ORDER BY first_at, ev_org, ev_uscc`
	rows, err := q.conn.Query(ctx, query, append(args, to, uint64(r.AfterRevocationMin))...)
	if err != nil {
		return nil, err
	}
	var out []AuditAlert
	err = scanAll(rows, func() error {
		var a AuditAlert
		var revokedAt, last time.Time
		var n uint64
		if err := rows.Scan(&a.Institution, &a.USCC, &a.ConsentID, &revokedAt, &n, &a.WindowStart, &last, &a.ExampleEventIDs); err != nil {
			return err
		}
		a.Rule, a.WindowStart, a.WindowEnd = RuleAfterRevocation, a.WindowStart.UTC(), last.UTC().Add(time.Second)
		a.Numbers = map[string]float64{"requests": float64(n), "revoked_at": float64(revokedAt.Unix()),
			"seconds_after_revocation": a.WindowStart.Sub(revokedAt).Seconds(), "threshold": float64(r.AfterRevocationMin)}
		a.Message = fmt.Sprintf("%s: %d data requests for firm %s after consent %s was revoked at %s", a.Institution, n, a.USCC,
			a.ConsentID, revokedAt.UTC().Format(time.RFC3339))
		out = append(out, a)
		return nil
	})
	return out, err
}

// burstAlerts compares each hour that starts in [from, to) with the median
// of the hourly counts of the baseline before it, hours without requests
// counting as zero.
func (q AuditQueries) burstAlerts(ctx context.Context, r AlertRules, org string, from, to time.Time) ([]AuditAlert, error) {
	first := alignDown(from, time.Hour)
	baseHours := int(r.BurstBaseline / time.Hour)
	where, args := eventWhere(first.Add(-r.BurstBaseline), to, org, r.Roles, "", nil)
	n := strconv.Itoa(r.Examples)
	rows, err := q.conn.Query(ctx, "SELECT org, "+windowed(time.Hour)+` AS h, count(), groupArray(`+n+`)(event_id)
		FROM audit_events FINAL WHERE `+where+` GROUP BY org, h`, args...)
	if err != nil {
		return nil, err
	}
	type hour struct {
		n        uint64
		examples []string
	}
	counts := map[string]map[int64]hour{}
	err = scanAll(rows, func() error {
		var o string
		var h time.Time
		var c hour
		if err := rows.Scan(&o, &h, &c.n, &c.examples); err != nil {
			return err
		}
		if counts[o] == nil {
			counts[o] = map[int64]hour{}
		}
		counts[o][h.Unix()] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	orgs := make([]string, 0, len(counts))
	for o := range counts {
		orgs = append(orgs, o)
	}
	slices.Sort(orgs)
	var out []AuditAlert
	base := make([]uint64, baseHours)
	for h := first; h.Before(to); h = h.Add(time.Hour) {
		for _, o := range orgs {
			cur := counts[o][h.Unix()]
			if cur.n < uint64(r.BurstMinRequests) {
				continue
			}
			for i := range base {
				base[i] = counts[o][h.Add(-time.Duration(i+1)*time.Hour).Unix()].n
			}
			med := median(base)
			if float64(cur.n) <= r.BurstFactor*med {
				continue
			}
			out = append(out, AuditAlert{Rule: RuleBurst, Institution: o, WindowStart: h, WindowEnd: h.Add(time.Hour),
				Numbers: map[string]float64{"requests": float64(cur.n), "baseline_median": med, "factor": r.BurstFactor,
					"threshold": r.BurstFactor * med, "min_requests": float64(r.BurstMinRequests), "baseline_hours": float64(baseHours)},
				ExampleEventIDs: cur.examples,
				Message: fmt.Sprintf("%s: %d requests in the hour from %s, above %g × its hourly median of %g over the %d hours before",
					o, cur.n, h.Format(time.RFC3339), r.BurstFactor, med, baseHours)})
		}
	}
	return out, nil
}

// median of counts; the mean of the two middle values for an even number.
func median(counts []uint64) float64 {
	if len(counts) == 0 {
		return 0
	}
	s := slices.Clone(counts)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return float64(s[m])
	}
	return (float64(s[m-1]) + float64(s[m])) / 2
}
