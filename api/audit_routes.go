package api

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/schema"
)

// The regulator's view of the sealed audit log: /v1/audit/events, stats,
// export, alerts and verify. Every request writes its own access event
// (respond, or recordStream for the export) before anything is answered.
// Definitions of every number and rule: docs/AUDIT.md.

// AuditReader reads the sealed audit log; schema.AuditQueries implements it.
type AuditReader interface {
	AuditEvents(ctx context.Context, f schema.AuditFilter, after *schema.AuditEventKey, limit int) ([]schema.AuditEventRow, *schema.AuditEventKey, error)
	OpenAuditEvents(ctx context.Context, f schema.AuditFilter) (*schema.AuditEventRows, error)
	AuditStats(ctx context.Context, q schema.AuditStatsQuery) ([]schema.AuditStats, error)
	AuditAlerts(ctx context.Context, q schema.AuditAlertQuery, rules schema.AlertRules) ([]schema.AuditAlert, error)
}

// AlertRules are the thresholds of GET /v1/audit/alerts; zero fields take
// schema.DefaultAlertRules.
type AlertRules = schema.AlertRules

// Bounds of the audit endpoints' ranges: an export streams, but a range
// bound keeps one request from holding a ClickHouse scan for hours.
const (
	MaxAuditExportRange = 31 * 24 * time.Hour
	MaxAuditAlertRange  = 31 * 24 * time.Hour
	MaxAuditStatsDays   = 366
	MaxAuditStatsMonths = 120
)

// AuditEventsPage is a page of GET /v1/audit/events, newest first.
type AuditEventsPage struct {
	Limit int                    `json:"limit"`
	Items []schema.AuditEventRow `json:"items"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor"`
}

// AuditStatsResponse is the answer of GET /v1/audit/stats.
type AuditStatsResponse struct {
	Period string              `json:"period"`
	From   time.Time           `json:"from"`
	To     time.Time           `json:"to"`
	Items  []schema.AuditStats `json:"items"`
}

// AlertRuleDoc states one rule as it was evaluated, thresholds included.
type AlertRuleDoc struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Parameters  map[string]any `json:"parameters"`
}

// AuditAlertsResponse is the answer of GET /v1/audit/alerts.
type AuditAlertsResponse struct {
	From   time.Time           `json:"from"`
	To     time.Time           `json:"to"`
	Rules  []AlertRuleDoc      `json:"rules"`
	Alerts []schema.AuditAlert `json:"alerts"`
}

// ChainVerification is one chain's verification report.
type ChainVerification struct {
	OK bool `json:"ok"`
	*firmbridge.ChainReport
}

// ChainFailureAt is the first failure of a verification, with its chain.
type ChainFailureAt struct {
	Chain uint32 `json:"chain"`
	*firmbridge.ChainFailure
}

// AuditVerifyResponse is the answer of GET /v1/audit/verify.
type AuditVerifyResponse struct {
	OK     bool                `json:"ok"`
	Chains []ChainVerification `json:"chains"`
	// Failure is the first chain's first failure; absent when ok.
	Failure *ChainFailureAt `json:"failure,omitempty"`
}

var auditFilterParams = []string{"institution", "firm", "role", "decision", "reason", "from", "to"}

func (s *Server) auditReader() (AuditReader, error) {
	if s.AuditQueries == nil {
		return nil, firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_queries_unavailable", "the audit log cannot be queried on this instance")
	}
	return s.AuditQueries, nil
}

func (s *Server) handleAuditEvents(c *gin.Context) {
	ev := s.newEvent(c)
	page, err := s.auditEvents(c, ev)
	s.respond(c, ev, http.StatusOK, page, err)
}

func (s *Server) auditEvents(c *gin.Context, ev *firmbridge.AccessEvent) (*AuditEventsPage, error) {
	params := c.Request.URL.Query()
	if err := onlyParams(params, append(slices.Clone(auditFilterParams), "limit", "cursor")...); err != nil {
		return nil, err
	}
	f, err := parseAuditFilter(params)
	if err != nil {
		return nil, err
	}
	ev.USCC = f.USCC
	limit, err := parseAuditLimit(params)
	if err != nil {
		return nil, err
	}
	fp := auditFingerprint("audit.events", "", f)
	after, err := decodeAuditCursor(params, "audit.events", fp)
	if err != nil {
		return nil, err
	}
	reader, err := s.auditReader()
	if err != nil {
		return nil, err
	}
	rows, next, err := reader.AuditEvents(c.Request.Context(), f, after, limit)
	if err != nil {
		return nil, err
	}
	page := &AuditEventsPage{Limit: limit, Items: rows}
	if page.Items == nil {
		page.Items = []schema.AuditEventRow{}
	}
	if next != nil {
		cur := encodeAuditCursor("audit.events", fp, *next)
		page.NextCursor = &cur
	}
	return page, nil
}

// parseAuditFilter reads the filters every audit listing shares.
func parseAuditFilter(params url.Values) (schema.AuditFilter, error) {
	var f schema.AuditFilter
	if v, given := params["institution"]; given {
		if !firmbridge.ValidInstitution(v[0]) {
			return f, invalidParam("institution", "institution must be an institution id (or an enterprise's USCC): 1 to 64 letters, digits, '-', '_' or '.'")
		}
		f.Org = v[0]
	}
	if v, given := params["firm"]; given {
		uscc, err := connectors.NormalizeUSCC(v[0])
		if err != nil {
			return f, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "firm", Message: err.Error()}
		}
		f.USCC = uscc
	}
	if v, given := params["role"]; given {
		if !firmbridge.ValidRole(v[0]) {
			return f, invalidParam("role", "role must be one of %s", strings.Join(firmbridge.Roles, ", "))
		}
		f.Role = v[0]
	}
	var err error
	if f.Decision, err = parseDecision(params); err != nil {
		return f, err
	}
	if v, given := params["reason"]; given {
		if !reasonCode.MatchString(v[0]) {
			return f, invalidParam("reason", "reason must be a reason code such as consent_required: 1 to 64 lower-case letters, digits or '_'")
		}
		f.Reason = v[0]
	}
	if f.From, f.To, err = parseAuditRange(params); err != nil {
		return f, err
	}
	return f, nil
}

// pick keeps the named parameters that were given.
func pick(params url.Values, names ...string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if v, given := params[n]; given {
			out[n] = v
		}
	}
	return out
}

var reasonCode = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

func parseDecision(params url.Values) (string, error) {
	v, given := params["decision"]
	if !given {
		return "", nil
	}
	if v[0] != firmbridge.DecisionAllow && v[0] != firmbridge.DecisionDeny {
		return "", invalidParam("decision", "decision must be allow or deny")
	}
	return v[0], nil
}

// parseAuditTime reads a time parameter: RFC 3339 (cut to whole seconds,
// as events are stored), or a date, which means its midnight UTC, or as an
// upper bound (upper) the midnight after, so that the day is included.
func parseAuditTime(params url.Values, name string, upper bool) (time.Time, error) {
	v, given := params[name]
	if !given {
		return time.Time{}, nil
	}
	bad := invalidParam(name, "%s must be an RFC 3339 time (2026-03-01T08:00:00+08:00) or a date (2026-03-01), between 1970 and 2105", name)
	var t time.Time
	if d, err := time.Parse(time.DateOnly, v[0]); err == nil {
		t = d
		if upper {
			t = t.AddDate(0, 0, 1)
		}
	} else if ts, err := time.Parse(time.RFC3339, v[0]); err == nil {
		t = ts.UTC().Truncate(time.Second)
	} else {
		return time.Time{}, bad
	}
	if t.Year() < 1970 || t.Year() > 2105 {
		return time.Time{}, bad
	}
	return t.UTC(), nil
}

// parseAuditRange reads from (inclusive) and to (exclusive).
func parseAuditRange(params url.Values) (from, to time.Time, err error) {
	if from, err = parseAuditTime(params, "from", false); err != nil {
		return
	}
	if to, err = parseAuditTime(params, "to", true); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		err = invalidParam("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return
}

func parseAuditLimit(params url.Values) (int, error) {
	if _, given := params["limit"]; !given {
		return DefaultRecordLimit, nil
	}
	n, err := strconv.Atoi(params.Get("limit"))
	if err != nil || n < 1 || n > MaxRecordLimit {
		return 0, invalidParam("limit", "limit must be a whole number from 1 to %d", MaxRecordLimit)
	}
	return n, nil
}

func rangeTooLarge(field string, max string) error {
	return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "range_too_large", Field: field,
		Message: "the range from from to to may span at most " + max + "; ask for several ranges"}
}

// auditCursor is what a next_cursor of the audit listings carries: the
// last event's position, and a fingerprint of the listing, caller and
// filters it belongs to, so it is never applied to another listing. It is
// not secret; whatever it says, the filters and the caller's rights apply.
type auditCursor struct {
	V      int    `json:"v"`
	List   string `json:"l"`
	Filter string `json:"q"`
	Time   int64  `json:"t"`
	Chain  uint32 `json:"c"`
	Seq    uint64 `json:"s"`
}

func auditFingerprint(list, caller string, f schema.AuditFilter) string {
	b, _ := json.Marshal([]any{list, caller, f.Org, f.USCC, f.Role, f.Decision, f.Reason, f.From.Unix(), f.To.Unix(), f.ExcludeRoles})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func encodeAuditCursor(list, filter string, k schema.AuditEventKey) string {
	b, _ := json.Marshal(auditCursor{V: 1, List: list, Filter: filter, Time: k.OccurredAt.Unix(), Chain: k.Chain, Seq: k.Seq})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAuditCursor(params url.Values, list, filter string) (*schema.AuditEventKey, error) {
	if _, given := params["cursor"]; !given {
		return nil, nil
	}
	bad := badCursor
	var cur auditCursor
	if err := unmarshalCursor(params.Get("cursor"), &cur); err != nil {
		return nil, err
	}
	if cur.V != 1 || cur.Time < 0 {
		return nil, bad("cursor is not a cursor this endpoint returned")
	}
	if cur.List != list || cur.Filter != filter {
		return nil, bad("cursor belongs to another listing or other filters; repeat the request that returned it")
	}
	return &schema.AuditEventKey{OccurredAt: time.Unix(cur.Time, 0).UTC(), Chain: cur.Chain, Seq: cur.Seq}, nil
}

func (s *Server) handleAuditStats(c *gin.Context) {
	ev := s.newEvent(c)
	resp, err := s.auditStats(c)
	s.respond(c, ev, http.StatusOK, resp, err)
}

func (s *Server) auditStats(c *gin.Context) (*AuditStatsResponse, error) {
	params := c.Request.URL.Query()
	if err := onlyParams(params, "institution", "period", "from", "to"); err != nil {
		return nil, err
	}
	period := schema.PeriodDay
	if v, given := params["period"]; given {
		if v[0] != schema.PeriodDay && v[0] != schema.PeriodMonth {
			return nil, invalidParam("period", "period must be day or month")
		}
		period = v[0]
	}
	f, err := parseAuditFilter(pick(params, "institution", "from", "to"))
	if err != nil {
		return nil, err
	}
	// Consents not yet expired must not count as expired: the range ends now at the latest.
	now := s.now().UTC().Truncate(time.Second)
	to := f.To
	if to.IsZero() || to.After(now) {
		to = now
	}
	from := f.From
	if from.IsZero() {
		if period == schema.PeriodMonth {
			from = to.AddDate(-1, 0, 0)
		} else {
			from = to.AddDate(0, 0, -30)
		}
	}
	from = schema.PeriodStart(period, from)
	switch {
	case !to.After(from):
		return nil, invalidParam("from", "from must lie before to and before now")
	case period == schema.PeriodDay && to.After(from.AddDate(0, 0, MaxAuditStatsDays)):
		return nil, rangeTooLarge("to", strconv.Itoa(MaxAuditStatsDays)+" days by day")
	case period == schema.PeriodMonth && to.After(from.AddDate(0, MaxAuditStatsMonths, 0)):
		return nil, rangeTooLarge("to", strconv.Itoa(MaxAuditStatsMonths)+" months by month")
	}
	reader, err := s.auditReader()
	if err != nil {
		return nil, err
	}
	items, err := reader.AuditStats(c.Request.Context(), schema.AuditStatsQuery{From: from, To: to, Period: period, Org: f.Org})
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []schema.AuditStats{}
	}
	return &AuditStatsResponse{Period: period, From: from, To: to, Items: items}, nil
}

func (s *Server) handleAuditAlerts(c *gin.Context) {
	ev := s.newEvent(c)
	resp, err := s.auditAlerts(c)
	s.respond(c, ev, http.StatusOK, resp, err)
}

func (s *Server) auditAlerts(c *gin.Context) (*AuditAlertsResponse, error) {
	params := c.Request.URL.Query()
	if err := checkParams(params, []string{"institution", "rule", "from", "to"}, []string{"rule"}); err != nil {
		return nil, err
	}
	f, err := parseAuditFilter(pick(params, "institution", "from", "to"))
	if err != nil {
		return nil, err
	}
	ruleNames, err := values(params, "rule", schema.AlertRuleNames)
	if err != nil {
		return nil, err
	}
	to, from := f.To, f.From
	if to.IsZero() {
		to = s.now().UTC().Truncate(time.Second)
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	switch {
	case !to.After(from):
		return nil, invalidParam("from", "from must lie before to")
	case to.Sub(from) > MaxAuditAlertRange:
		return nil, rangeTooLarge("to", "31 days")
	}
	reader, err := s.auditReader()
	if err != nil {
		return nil, err
	}
	rules := s.AlertRules.WithDefaults()
	alerts, err := reader.AuditAlerts(c.Request.Context(), schema.AuditAlertQuery{From: from, To: to, Org: f.Org, Rules: ruleNames}, rules)
	if err != nil {
		return nil, err
	}
	if alerts == nil {
		alerts = []schema.AuditAlert{}
	}
	docs := []AlertRuleDoc{}
	for _, d := range alertRuleDocs(rules) {
		if len(ruleNames) == 0 || slices.Contains(ruleNames, d.Name) {
			docs = append(docs, d)
		}
	}
	return &AuditAlertsResponse{From: from, To: to, Rules: docs, Alerts: alerts}, nil
}

// alertRuleDocs states the rules with the thresholds in force; the exact
// definitions are in docs/AUDIT.md.
func alertRuleDocs(r AlertRules) []AlertRuleDoc {
	return []AlertRuleDoc{
		{Name: schema.RuleDenialRate, Description: "an institution's denied requests / all its requests in a window is above the threshold, with at least min_requests requests",
			Parameters: map[string]any{"window_seconds": int64(r.DenialRateWindow / time.Second), "min_requests": r.DenialRateMinRequests, "threshold": r.DenialRateMax, "roles": r.Roles}},
		{Name: schema.RuleFirmsWithoutConsent, Description: "an institution was refused consent_required for at least threshold distinct firms in a window",
			Parameters: map[string]any{"window_seconds": int64(r.FirmsWithoutConsentWindow / time.Second), "threshold": r.FirmsWithoutConsentMin, "roles": r.Roles}},
		{Name: schema.RuleAfterRevocation, Description: "an institution made at least threshold data requests for a firm after the firm revoked its consent (served or refused under it, or refused consent_revoked for its purpose)",
			Parameters: map[string]any{"threshold": r.AfterRevocationMin, "data_paths": r.DataPaths, "roles": r.Roles}},
		{Name: schema.RuleBurst, Description: "an institution's requests in a clock hour are above factor × the median of its hourly counts over the baseline before that hour, and at least min_requests",
			Parameters: map[string]any{"factor": r.BurstFactor, "baseline_hours": int64(r.BurstBaseline / time.Hour), "min_requests": r.BurstMinRequests, "roles": r.Roles}},
	}
}

func (s *Server) handleAuditVerify(c *gin.Context) {
	ev := s.newEvent(c)
	resp, err := s.auditVerify(c)
	s.respond(c, ev, http.StatusOK, resp, err)
}

func (s *Server) auditVerify(c *gin.Context) (*AuditVerifyResponse, error) {
	params := c.Request.URL.Query()
	if err := onlyParams(params, "chain", "from", "to"); err != nil {
		return nil, err
	}
	uintParam := func(name string, bits int, def uint64) (uint64, error) {
		if _, given := params[name]; !given {
			return def, nil
		}
		n, err := strconv.ParseUint(params.Get(name), 10, bits)
		if err != nil {
			return 0, invalidParam(name, "%s must be a whole number from 0 to %d", name, uint64(1)<<bits-1)
		}
		return n, nil
	}
	from, err := uintParam("from", 64, 1)
	if err != nil {
		return nil, err
	}
	to, err := uintParam("to", 64, 0)
	if err != nil {
		return nil, err
	}
	if from == 0 {
		return nil, invalidParam("from", "from is a sequence number; chains start at 1")
	}
	if to != 0 && to < from {
		return nil, invalidParam("to", "to (%d) is before from (%d)", to, from)
	}
	if s.AuditChains == nil || len(s.AuditKeys) == 0 {
		return nil, firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_verify_unavailable", "this instance has no audit chain reader or no audit public keys configured")
	}
	ctx := c.Request.Context()
	chains, err := s.AuditChains.AuditChains(ctx)
	if err != nil {
		return nil, err
	}
	if _, given := params["chain"]; given {
		n, err := uintParam("chain", 32, 0)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(chains, uint32(n)) {
			return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "audit_chain_not_found", "no audit chain %d", n)
		}
		chains = []uint32{uint32(n)}
	}
	resp := &AuditVerifyResponse{OK: true, Chains: []ChainVerification{}}
	for _, chain := range chains {
		report, err := s.AuditChains.VerifyAuditChain(ctx, chain, from, to, s.AuditKeys)
		if err != nil {
			return nil, err
		}
		resp.Chains = append(resp.Chains, ChainVerification{OK: report.OK(), ChainReport: report})
		if !report.OK() && resp.OK {
			resp.OK, resp.Failure = false, &ChainFailureAt{Chain: chain, ChainFailure: report.Failure}
		}
	}
	return resp, nil
}

func (s *Server) handleAuditExport(c *gin.Context) {
	ev := s.newEvent(c)
	f, err := s.exportFilter(c)
	ev.USCC = f.USCC
	var reader AuditReader
	if err == nil {
		reader, err = s.auditReader()
	}
	var rows *schema.AuditEventRows
	if err == nil {
		rows, err = reader.OpenAuditEvents(c.Request.Context(), f)
	}
	if err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	defer func() { _ = rows.Close() }()
	if !s.recordStream(c, ev) {
		return
	}
	s.streamCSV(c, f, rows)
}

// exportFilter reads the export's filters: from is required, to defaults
// to now, and the range is bounded.
func (s *Server) exportFilter(c *gin.Context) (schema.AuditFilter, error) {
	params := c.Request.URL.Query()
	if err := onlyParams(params, auditFilterParams...); err != nil {
		return schema.AuditFilter{}, err
	}
	f, err := parseAuditFilter(params)
	if err != nil {
		return f, err
	}
	if f.From.IsZero() {
		return f, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_parameter", Field: "from",
			Message: "from is required: an export covers at most 31 days"}
	}
	if f.To.IsZero() {
		f.To = s.now().UTC().Truncate(time.Second).Add(time.Second)
		if !f.To.After(f.From) {
			return f, invalidParam("from", "from lies in the future")
		}
	}
	if f.To.Sub(f.From) > MaxAuditExportRange {
		return f, rangeTooLarge("to", "31 days")
	}
	return f, nil
}

// recordStream writes the access event of a streamed answer, allowed,
// before the first byte: what respond does for a JSON answer. It answers
// 503 and returns false when the event cannot be written.
func (s *Server) recordStream(c *gin.Context, ev *firmbridge.AccessEvent) bool {
	ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionAllow, "", http.StatusOK
	if err := s.Audit.Record(c.Request.Context(), ev); err != nil {
		s.logger().Error("audit log write failed; failing closed", "request_id", ev.RequestID, "err", err)
		writeError(c, s.logger(), firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_unavailable",
			"the access could not be recorded, so no data is served; retry later"))
		return false
	}
	return true
}

// AuditCSVHeader names the export's columns.
var AuditCSVHeader = []string{"event_id", "occurred_at", "chain", "seq", "hash", "request_id", "subject", "role", "institution", "uscc",
	"scopes", "purpose", "consent_id", "decision", "reason", "status", "client_addr", "method", "path"}

// AuditCSVRecord is one event as an export row; scopes are joined by ';'.
func AuditCSVRecord(r *schema.AuditEventRow) []string {
	return []string{r.EventID, r.OccurredAt.UTC().Format(time.RFC3339), strconv.FormatUint(uint64(r.Chain), 10), strconv.FormatUint(r.Seq, 10),
		r.Hash, r.RequestID, r.Subject, r.Role, r.Org, r.USCC, strings.Join(r.Scopes, ";"), r.Purpose, r.ConsentID, r.Decision, r.Reason,
		strconv.Itoa(r.Status), r.ClientAddr, r.Method, r.Path}
}

// auditRowStream is what streamCSV reads: *schema.AuditEventRows.
type auditRowStream interface {
	Next() bool
	Row() *schema.AuditEventRow
	Err() error
}

// exportFlushRows is how many rows go out per chunk.
const exportFlushRows = 500

// streamCSV writes the rows as RFC 4180 CSV, chunk by chunk. The status is
// sent before the rows, so the trailers X-Export-Rows and X-Export-Status
// (complete or error) say whether the export is whole; on an error the
// connection is also cut, so that no client mistakes a truncated export
// for a complete one.
func (s *Server) streamCSV(c *gin.Context, f schema.AuditFilter, rows auditRowStream) {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8; header=present")
	h.Set("Content-Disposition", `attachment; filename="audit-events-`+f.From.Format("20060102T150405Z")+"-"+f.To.Format("20060102T150405Z")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	h.Set("Trailer", "X-Export-Rows, X-Export-Status")
	c.Status(http.StatusOK)
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	writeCSVRow(w, AuditCSVHeader)
	n := 0
	var err error
	for rows.Next() {
		writeCSVRow(w, AuditCSVRecord(rows.Row()))
		n++
		if n%exportFlushRows == 0 {
			if err = w.Flush(); err != nil {
				break
			}
			c.Writer.Flush()
		}
	}
	if err == nil {
		err = rows.Err()
	}
	if err == nil {
		err = w.Flush()
	}
	h.Set("X-Export-Rows", strconv.Itoa(n))
	if err != nil {
		h.Set("X-Export-Status", "error")
		s.logger().Error("audit export cut short", "request_id", requestID(c), "rows", n, "err", err)
		abortConnection(c)
		return
	}
	h.Set("X-Export-Status", "complete")
	c.Writer.Flush()
}

// writeCSVRow writes one record as RFC 4180 says: fields holding a comma,
// a quote, CR or LF are quoted with quotes doubled, and the line ends in
// CRLF. encoding/csv would turn a lone CR inside a field into nothing, and
// an audit export must give back every byte.
func writeCSVRow(w *bufio.Writer, fields []string) {
	for i, f := range fields {
		if i > 0 {
			_ = w.WriteByte(',')
		}
		if strings.ContainsAny(f, ",\"\r\n") {
			_ = w.WriteByte('"')
			_, _ = w.WriteString(strings.ReplaceAll(f, `"`, `""`))
			_ = w.WriteByte('"')
		} else {
			_, _ = w.WriteString(f)
		}
	}
	// bufio errors are sticky: the caller's Flush reports them.
	_, _ = w.WriteString("\r\n")
}

// abortConnection closes the client connection under a response already
// under way, so that the chunked body never ends properly. gin refuses to
// hijack once the body started, so the server's own writer is asked.
func abortConnection(c *gin.Context) {
	u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter })
	if !ok {
		return
	}
	if hj, ok := u.Unwrap().(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
		}
	}
	c.Abort()
}
