package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// auEnv is an API whose audit routes read a scratch ClickHouse database
// that the test fills with sealed events, as the sealer would.
type auEnv struct {
	t       *testing.T
	store   *schema.Store
	srv     *api.Server
	handler http.Handler
	tokens  *api.Tokens
	audit   *memAudit
	sealed  schema.AuditStore
	priv    ed25519.PrivateKey
	states  map[uint32]*firmbridge.ChainState
	digests map[uint32]*firmbridge.AuditDigest
	offset  int64
	n       int
}

func newAuEnv(t *testing.T, edit func(*api.Server)) *auEnv {
	t.Helper()
	store := testenv.Store(t)
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &auEnv{t: t, store: store, tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key},
		audit: &memAudit{}, sealed: schema.AuditStore{Store: store}, priv: priv,
		states: map[uint32]*firmbridge.ChainState{}, digests: map[uint32]*firmbridge.AuditDigest{}}
	e.srv = &api.Server{Tokens: e.tokens, Consents: schema.ConsentStore{Store: store}, Profiles: schema.ProfileReader{Store: store},
		Audit: e.audit, Logger: slog.New(slog.NewTextHandler(ctLog{t}, nil)),
		AuditQueries: schema.AuditQueries{Store: store}, AuditChains: e.sealed, AuditKeys: firmbridge.AuditKeys{"audit-1": pub}}
	if edit != nil {
		edit(e.srv)
	}
	e.handler = e.srv.Handler()
	return e
}

func (e *auEnv) token(role, org string) string {
	e.t.Helper()
	tok, err := e.tokens.Issue("user@"+org, role, org, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// event makes an access event; the chain is chosen by seal.
func (e *auEnv) event(role, org, uscc string, at time.Time, decision, reason string) *firmbridge.AccessEvent {
	e.n++
	status := 200
	if decision == firmbridge.DecisionDeny {
		status = 403
	}
	return &firmbridge.AccessEvent{EventID: fmt.Sprintf("au-%05d", e.n), RequestID: fmt.Sprintf("rq-%05d", e.n), OccurredAt: at,
		Subject: "user@" + org, Role: role, Org: org, USCC: uscc, Scopes: []string{"tax"}, Purpose: firmbridge.PurposeCreditAssessment,
		Decision: decision, Reason: reason, Status: status, ClientAddr: "10.1.2.3", Method: "GET", Path: "/v1/firms/" + uscc + "/profile"}
}

// seal stores events in chain, as the sealer does, and returns them as
// the API lists them.
func (e *auEnv) seal(chain uint32, events ...*firmbridge.AccessEvent) []schema.AuditEventRow {
	e.t.Helper()
	st := e.states[chain]
	if st == nil {
		s := firmbridge.NewChainState(chain)
		st = &s
		e.states[chain] = st
	}
	var batch []firmbridge.SealedEvent
	var rows []schema.AuditEventRow
	for _, ev := range events {
		sealed, err := st.Seal(ev, e.offset)
		if err != nil {
			e.t.Fatal(err)
		}
		e.offset++
		batch = append(batch, sealed)
		row := schema.AuditEventRow{Chain: chain, Seq: sealed.Seq, Hash: sealed.Hash.String(), AccessEvent: *ev}
		row.OccurredAt = ev.OccurredAt.UTC().Truncate(time.Second)
		rows = append(rows, row)
	}
	if err := e.sealed.AppendSealed(context.Background(), *st, batch); err != nil {
		e.t.Fatal(err)
	}
	return rows
}

// sign writes the chain's next digest, covering everything sealed so far.
func (e *auEnv) sign(chain uint32) {
	e.t.Helper()
	d := firmbridge.NextAuditDigest(e.digests[chain], *e.states[chain], time.Now())
	d.Sign(e.priv, "audit-1")
	if err := e.sealed.WriteDigest(context.Background(), &d); err != nil {
		e.t.Fatal(err)
	}
	e.digests[chain] = &d
}

type auResp struct {
	code   int
	body   []byte
	header http.Header
	event  *firmbridge.AccessEvent
}

// get sends a GET and checks that it wrote exactly one access event that
// matches the answer.
func (e *auEnv) get(path, token string) auResp {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	before := len(e.audit.snapshot())
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	events := e.audit.snapshot()
	if len(events) != before+1 {
		e.t.Fatalf("GET %s wrote %d access events, want exactly 1", path, len(events)-before)
	}
	ev := events[len(events)-1]
	want := firmbridge.DecisionAllow
	if rec.Code >= 400 {
		want = firmbridge.DecisionDeny
	}
	if ev.Decision != want || ev.Status != rec.Code || ev.Path != req.URL.Path {
		e.t.Errorf("GET %s: access event %+v does not match the answer %d", path, ev, rec.Code)
	}
	return auResp{code: rec.Code, body: rec.Body.Bytes(), header: rec.Header(), event: ev}
}

func (r auResp) want(t *testing.T, status int, code string) auResp {
	t.Helper()
	if r.code != status {
		t.Fatalf("status %d, want %d; body %s", r.code, status, r.body)
	}
	if code != "" {
		var p api.Problem
		if err := json.Unmarshal(r.body, &p); err != nil || p.Code != code {
			t.Fatalf("answer %s, want problem code %s", r.body, code)
		}
		if r.event.Reason != code {
			t.Errorf("access event reason %q, want %q", r.event.Reason, code)
		}
	}
	return r
}

func (r auResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %s: %v", r.body, err)
	}
}

const (
	auFirm1 = "91350100M000100Y43"
	auFirm2 = "91110108MA01ABCD1E"
	auFirm3 = "91440300MA5FAKE01G"
	auReg   = "REG-PBOC"
)

var auAuditRoutes = []string{"/v1/audit/events", "/v1/audit/stats", "/v1/audit/export?from=2025-01-01", "/v1/audit/alerts", "/v1/audit/verify"}

func TestAuditRoutes_OnlyRegulators(t *testing.T) {
	e := newAuEnv(t, nil)
	others := map[string]string{firmbridge.RoleBank: "BANK-1", firmbridge.RoleEnterprise: auFirm1, firmbridge.RoleProvider: "PROV-1",
		firmbridge.RoleAdmin: "ADMIN-1"}
	for _, path := range auAuditRoutes {
		for role, org := range others {
			r := e.get(path, e.token(role, org)).want(t, http.StatusForbidden, "role_not_allowed")
			if r.event.Role != role || r.event.Org != org {
				t.Errorf("%s as %s: event %+v", path, role, r.event)
			}
		}
	}
	for _, role := range []string{firmbridge.RoleRegulator, firmbridge.RoleProvider, firmbridge.RoleAdmin} {
		e.get("/v1/access-log", e.token(role, others[role]+"X")).want(t, http.StatusForbidden, "role_not_allowed")
	}
}

// auWalk reads every page of a listing and checks that the pages hold
// no event twice and that each but the last is full.
func auWalk(t *testing.T, e *auEnv, path, token string, limit int) []schema.AuditEventRow {
	t.Helper()
	var all []schema.AuditEventRow
	seen := map[string]bool{}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := path + sep + "limit=" + fmt.Sprint(limit)
	for pages := 0; ; pages++ {
		var page api.AuditEventsPage
		e.get(next, token).want(t, http.StatusOK, "").decode(t, &page)
		if page.Limit != limit || len(page.Items) > limit || (page.NextCursor != nil && len(page.Items) != limit) {
			t.Fatalf("%s: page of %d items (limit %d, next %v)", next, len(page.Items), page.Limit, page.NextCursor)
		}
		for _, it := range page.Items {
			if seen[it.EventID] {
				t.Fatalf("%s: event %s on two pages", path, it.EventID)
			}
			seen[it.EventID] = true
		}
		all = append(all, page.Items...)
		if page.NextCursor == nil {
			return all
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		next = path + sep + "limit=" + fmt.Sprint(limit) + "&cursor=" + url.QueryEscape(*page.NextCursor)
	}
}

func auNewestFirst(rows []schema.AuditEventRow, keep func(r schema.AuditEventRow) bool) []string {
	var out []schema.AuditEventRow
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.OccurredAt.Equal(b.OccurredAt) {
			return a.OccurredAt.After(b.OccurredAt)
		}
		if a.Chain != b.Chain {
			return a.Chain > b.Chain
		}
		return a.Seq > b.Seq
	})
	return auIDs(out)
}

func auIDs(rows []schema.AuditEventRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.EventID)
	}
	return out
}

// auSeedMixed seals n events of two banks, an enterprise and a regulator
// over two days, several per second, in two chains.
func auSeedMixed(e *auEnv, n int, t0 time.Time) []schema.AuditEventRow {
	firms := []string{auFirm1, auFirm2, auFirm3}
	var chains [2][]*firmbridge.AccessEvent
	for i := range n {
		at := t0.Add(time.Duration(i/2) * 17 * time.Minute)
		var ev *firmbridge.AccessEvent
		switch i % 7 {
		case 5:
			ev = e.event(firmbridge.RoleEnterprise, auFirm1, auFirm1, at, firmbridge.DecisionAllow, "")
		case 6:
			ev = e.event(firmbridge.RoleRegulator, auReg, firms[i%3], at, firmbridge.DecisionAllow, "")
		default:
			bank := []string{"BANK-1", "BANK-2"}[i%2]
			ev = e.event(firmbridge.RoleBank, bank, firms[i%3], at, firmbridge.DecisionAllow, "")
			if i%3 == 1 {
				ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionDeny, []string{"consent_required", "consent_revoked"}[i%2], 403
			}
		}
		chains[i%2] = append(chains[i%2], ev)
	}
	rows := e.seal(0, chains[0]...)
	return append(rows, e.seal(1, chains[1]...)...)
}

func TestAuditEvents_FiltersAndPagination(t *testing.T) {
	e := newAuEnv(t, nil)
	t0 := time.Date(2025, 5, 31, 12, 0, 0, 0, time.UTC)
	rows := auSeedMixed(e, 180, t0)
	reg := e.token(firmbridge.RoleRegulator, auReg)
	cut := t0.Add(10 * time.Hour)
	cases := []struct {
		query string
		keep  func(r schema.AuditEventRow) bool
	}{
		{"", func(schema.AuditEventRow) bool { return true }},
		{"institution=BANK-2", func(r schema.AuditEventRow) bool { return r.Org == "BANK-2" }},
		{"firm=" + strings.ToLower(auFirm2), func(r schema.AuditEventRow) bool { return r.USCC == auFirm2 }},
		{"institution=BANK-1&firm=" + auFirm3, func(r schema.AuditEventRow) bool { return r.Org == "BANK-1" && r.USCC == auFirm3 }},
		{"role=regulator", func(r schema.AuditEventRow) bool { return r.Role == firmbridge.RoleRegulator }},
		{"decision=deny", func(r schema.AuditEventRow) bool { return r.Decision == firmbridge.DecisionDeny }},
		{"decision=deny&reason=consent_revoked", func(r schema.AuditEventRow) bool { return r.Reason == "consent_revoked" }},
		{"from=" + url.QueryEscape(cut.Format(time.RFC3339)) + "&to=2025-06-01",
			func(r schema.AuditEventRow) bool {
				return !r.OccurredAt.Before(cut) && r.OccurredAt.Before(time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC))
			}},
		{"from=2025-06-01T08:00:00%2B08:00&institution=BANK-1",
			func(r schema.AuditEventRow) bool {
				return r.Org == "BANK-1" && !r.OccurredAt.Before(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
			}},
	}
	for _, tc := range cases {
		want := auNewestFirst(rows, tc.keep)
		if len(want) == 0 {
			t.Fatalf("%s: the seed has no matching event", tc.query)
		}
		got := auWalk(t, e, "/v1/audit/events?"+tc.query, reg, 7)
		if !reflect.DeepEqual(auIDs(got), want) {
			t.Errorf("%s: got %v\nwant %v", tc.query, auIDs(got), want)
		}
	}
	// A whole row as the regulator sees it.
	var page api.AuditEventsPage
	e.get("/v1/audit/events?limit=1&role=enterprise", reg).want(t, http.StatusOK, "").decode(t, &page)
	want := rows[slices.IndexFunc(rows, func(r schema.AuditEventRow) bool {
		return r.EventID == auNewestFirst(rows, func(r schema.AuditEventRow) bool {
			return r.Role == firmbridge.RoleEnterprise
		})[0]
	})]
	if len(page.Items) != 1 || !reflect.DeepEqual(page.Items[0], want) {
		t.Errorf("row %+v, want %+v", page.Items, want)
	}

	// The regulator's own event names the firm it asked about.
	r := e.get("/v1/audit/events?firm="+auFirm1, reg).want(t, http.StatusOK, "")
	if r.event.Role != firmbridge.RoleRegulator || r.event.Org != auReg || r.event.USCC != auFirm1 {
		t.Errorf("regulator's access event %+v", r.event)
	}

	// A cursor belongs to its filters.
	e.get("/v1/audit/events?limit=5&institution=BANK-1", reg).want(t, http.StatusOK, "").decode(t, &page)
	e.get("/v1/audit/events?limit=5&institution=BANK-2&cursor="+*page.NextCursor, reg).want(t, http.StatusBadRequest, "invalid_cursor")
	e.get("/v1/audit/events?cursor=garbage", reg).want(t, http.StatusBadRequest, "invalid_cursor")

	for _, bad := range []struct{ query, code string }{
		{"limit=0", "invalid_parameter"}, {"limit=1001", "invalid_parameter"}, {"decision=maybe", "invalid_parameter"},
		{"role=king", "invalid_parameter"}, {"firm=123", "invalid_uscc"}, {"from=yesterday", "invalid_parameter"},
		{"from=2025-06-02&to=2025-06-01", "invalid_parameter"}, {"institution=a%20b", "invalid_parameter"},
		{"reason=DROP%20TABLE", "invalid_parameter"}, {"colour=red", "invalid_parameter"},
	} {
		e.get("/v1/audit/events?"+bad.query, reg).want(t, http.StatusBadRequest, bad.code)
	}
}

func TestAuditStats_HTTP(t *testing.T) {
	e := newAuEnv(t, nil)
	day := func(d, h int) time.Time { return time.Date(2025, 7, 1+d, h, 0, 0, 0, time.UTC) }
	deny, allow := firmbridge.DecisionDeny, firmbridge.DecisionAllow
	e.seal(0,
		e.event(firmbridge.RoleBank, "BANK-1", auFirm1, day(0, 1), allow, ""),
		e.event(firmbridge.RoleBank, "BANK-1", auFirm2, day(0, 2), deny, "consent_required"),
		e.event(firmbridge.RoleBank, "BANK-1", auFirm3, day(0, 3), deny, "consent_required"),
		e.event(firmbridge.RoleBank, "BANK-1", auFirm1, day(1, 1), deny, "consent_revoked"),
		e.event(firmbridge.RoleBank, "BANK-2", auFirm1, day(1, 1), allow, ""))
	cs := schema.ConsentStore{Store: e.store}
	c := &firmbridge.Consent{ID: "c-1", USCC: auFirm1, Grantee: "BANK-1", Scopes: []string{"tax"}, Purpose: firmbridge.PurposeCreditAssessment,
		Status: firmbridge.ConsentRevoked, ValidFrom: day(-5, 0), ExpiresAt: day(40, 0), CreatedAt: day(-5, 0), UpdatedAt: day(1, 0), UpdatedBy: "x",
		Version: firmbridge.VersionOf(day(1, 0))}
	if err := cs.SaveConsent(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	reg := e.token(firmbridge.RoleRegulator, auReg)
	var resp api.AuditStatsResponse
	e.get("/v1/audit/stats?from=2025-07-01&to=2025-07-02&institution=BANK-1", reg).want(t, http.StatusOK, "").decode(t, &resp)
	want := []schema.AuditStats{
		{Institution: "BANK-1", PeriodStart: day(0, 0), PeriodEnd: day(1, 0), Requests: 3, Denials: 2, DenialsByReason: map[string]uint64{"consent_required": 2},
			DistinctFirms: 3, ConsentsActive: 1},
		{Institution: "BANK-1", PeriodStart: day(1, 0), PeriodEnd: day(2, 0), Requests: 1, Denials: 1, DenialsByReason: map[string]uint64{"consent_revoked": 1},
			DistinctFirms: 1, ConsentsRevoked: 1},
	}
	if resp.Period != "day" || !resp.From.Equal(day(0, 0)) || !resp.To.Equal(day(2, 0)) || !reflect.DeepEqual(resp.Items, want) {
		t.Errorf("stats %+v\nwant items %+v", resp, want)
	}
	e.get("/v1/audit/stats?period=month&from=2025-07-15&to=2025-07-31", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if resp.Period != "month" || !resp.From.Equal(day(0, 0)) || len(resp.Items) != 2 || resp.Items[0].Requests != 4 || resp.Items[1].Requests != 1 {
		t.Errorf("monthly stats %+v, want BANK-1 with 4 requests and BANK-2 with 1 from 2025-07-01", resp)
	}
	e.get("/v1/audit/stats?period=week", reg).want(t, http.StatusBadRequest, "invalid_parameter")
	e.get("/v1/audit/stats?from=2020-01-01&to=2025-01-01", reg).want(t, http.StatusBadRequest, "range_too_large")
	e.get("/v1/audit/stats?period=month&from=2000-01-01&to=2025-01-01", reg).want(t, http.StatusBadRequest, "range_too_large")
	// Without a range: the last 30 days, up to now.
	e.get("/v1/audit/stats", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if len(resp.Items) != 0 || resp.To.After(time.Now()) {
		t.Errorf("recent stats %+v, want none", resp)
	}
}

func TestAuditExport_CSVStreamed(t *testing.T) {
	e := newAuEnv(t, nil)
	t0 := time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC)
	rows := auSeedMixed(e, 1203, t0) // more than two flushes
	// Fields that need quoting come back as they were.
	odd := e.event(firmbridge.RoleBank, "BANK-1", auFirm1, t0.Add(time.Minute), firmbridge.DecisionAllow, "")
	odd.Subject, odd.Path, odd.Scopes = "o'neil, \"the\" user\r\nline two", "/v1/x,y", []string{"tax", "patent"}
	rows = append(rows, e.seal(2, odd)...)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	reg := e.token(firmbridge.RoleRegulator, auReg)
	from, to := t0.Format(time.RFC3339), t0.Add(30*24*time.Hour).Format(time.RFC3339)
	query := "?institution=BANK-1&from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to)

	before := len(e.audit.snapshot())
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/audit/export"+query, nil)
	req.Header.Set("Authorization", "Bearer "+reg)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !slices.Equal(resp.TransferEncoding, []string{"chunked"}) {
		t.Fatalf("export: %d %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), resp.TransferEncoding)
	}
	if got := e.audit.snapshot()[before:]; len(got) != 1 || got[0].Decision != firmbridge.DecisionAllow || got[0].Role != firmbridge.RoleRegulator {
		t.Errorf("export wrote access events %+v, want one allow", got)
	}
	if !strings.HasSuffix(string(body), "\r\n") || !strings.Contains(string(body), "\r\n") {
		t.Error("records must end in CRLF")
	}
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(recs[0], api.AuditCSVHeader) {
		t.Errorf("header %v", recs[0])
	}
	if resp.Trailer.Get("X-Export-Status") != "complete" || resp.Trailer.Get("X-Export-Rows") != fmt.Sprint(len(recs)-1) {
		t.Errorf("trailers %v, want complete and %d rows", resp.Trailer, len(recs)-1)
	}
	// The same rows as the listing, oldest first. encoding/csv reads CRLF
	// inside a quoted field as LF; the bytes on the wire are the original.
	want := auNewestFirst(rows, func(r schema.AuditEventRow) bool {
		return r.Org == "BANK-1" && !r.OccurredAt.Before(t0) && r.OccurredAt.Before(t0.Add(30*24*time.Hour))
	})
	slices.Reverse(want)
	byID := map[string]schema.AuditEventRow{}
	for _, r := range rows {
		byID[r.EventID] = r
	}
	var got []string
	for _, rec := range recs[1:] {
		got = append(got, rec[0])
		r := byID[rec[0]]
		wantRec := api.AuditCSVRecord(&r)
		wantRec[6] = strings.ReplaceAll(wantRec[6], "\r\n", "\n")
		if !reflect.DeepEqual(rec, wantRec) {
			t.Errorf("record %v, want %v", rec, wantRec)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("export holds %d events, want %d", len(got), len(want))
	}
	if !strings.Contains(string(body), `"o'neil, ""the"" user`+"\r\nline two\"") {
		t.Error("the quoted field is not in RFC 4180 form")
	}
	listed := auWalk(t, e, "/v1/audit/events"+query, reg, 1000)
	slices.Reverse(listed)
	if !reflect.DeepEqual(auIDs(listed), got) {
		t.Error("the export and the listing differ")
	}

	for _, bad := range []struct{ query, code string }{
		{"", "invalid_parameter"},
		{"?from=2025-01-01&to=2025-03-01", "range_too_large"},
		{"?from=2025-01-01&limit=5", "invalid_parameter"},
	} {
		e.get("/v1/audit/export"+bad.query, reg).want(t, http.StatusBadRequest, bad.code)
	}
}

func TestAuditAlerts_HTTP(t *testing.T) {
	e := newAuEnv(t, func(s *api.Server) { s.AlertRules = api.AlertRules{DenialRateMinRequests: 4, DenialRateMax: 0.5} })
	h := time.Date(2025, 9, 3, 14, 0, 0, 0, time.UTC)
	var evs []*firmbridge.AccessEvent
	for i := range 6 { // BANK-1: 4 of 6 denied; BANK-2: 2 of 6
		for _, bank := range []string{"BANK-1", "BANK-2"} {
			d, reason := firmbridge.DecisionAllow, ""
			if (bank == "BANK-1" && i < 4) || (bank == "BANK-2" && i < 2) {
				d, reason = firmbridge.DecisionDeny, "consent_expired"
			}
			evs = append(evs, e.event(firmbridge.RoleBank, bank, auFirm1, h.Add(time.Duration(i)*time.Minute), d, reason))
		}
	}
	e.seal(0, evs...)
	reg := e.token(firmbridge.RoleRegulator, auReg)
	var resp api.AuditAlertsResponse
	e.get("/v1/audit/alerts?from=2025-09-03&to=2025-09-03", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if len(resp.Alerts) != 1 || resp.Alerts[0].Rule != "denial_rate" || resp.Alerts[0].Institution != "BANK-1" ||
		resp.Alerts[0].Numbers["denials"] != 4 || resp.Alerts[0].Numbers["requests"] != 6 || len(resp.Alerts[0].ExampleEventIDs) != 4 {
		t.Errorf("alerts %+v, want BANK-1's denial rate", resp.Alerts)
	}
	if len(resp.Rules) != 4 || resp.Rules[0].Parameters["threshold"] != 0.5 || resp.Rules[0].Parameters["min_requests"] != float64(4) ||
		resp.Rules[3].Parameters["factor"] != float64(5) {
		t.Errorf("rules %+v, want the configured thresholds and the defaults", resp.Rules)
	}
	e.get("/v1/audit/alerts?from=2025-09-03&to=2025-09-03&rule=burst,access_after_revocation", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if len(resp.Alerts) != 0 || len(resp.Rules) != 2 {
		t.Errorf("burst and revocation only: %+v", resp)
	}
	e.get("/v1/audit/alerts?from=2025-09-03&to=2025-09-03&institution=BANK-2", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if len(resp.Alerts) != 0 {
		t.Errorf("BANK-2: %+v", resp.Alerts)
	}
	e.get("/v1/audit/alerts?rule=nonsense", reg).want(t, http.StatusBadRequest, "invalid_parameter")
	e.get("/v1/audit/alerts?from=2025-01-01&to=2025-03-01", reg).want(t, http.StatusBadRequest, "range_too_large")
}

func TestAuditVerify_OKAndTampered(t *testing.T) {
	e := newAuEnv(t, nil)
	reg := e.token(firmbridge.RoleRegulator, auReg)
	var resp api.AuditVerifyResponse
	e.get("/v1/audit/verify", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if !resp.OK || len(resp.Chains) != 0 {
		t.Errorf("empty log: %+v", resp)
	}
	t0 := time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)
	var rows []schema.AuditEventRow
	for b := range 3 {
		for chain := range uint32(2) {
			var evs []*firmbridge.AccessEvent
			for i := range 10 {
				evs = append(evs, e.event(firmbridge.RoleBank, fmt.Sprintf("BANK-%d", chain), auFirm1,
					t0.Add(time.Duration(b*10+i)*time.Minute), firmbridge.DecisionAllow, ""))
			}
			rows = append(rows, e.seal(chain, evs...)...)
			e.sign(chain)
		}
	}
	e.get("/v1/audit/verify", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if !resp.OK || len(resp.Chains) != 2 || resp.Failure != nil {
		t.Fatalf("sealed log: %s", mustJSON(resp))
	}
	for _, c := range resp.Chains {
		if !c.OK || c.Events != 30 || c.SignedUpTo != 30 || c.Digests != 3 {
			t.Errorf("chain %+v, want 30 events signed by 3 digests", c.ChainReport)
		}
	}
	e.get("/v1/audit/verify?chain=1&from=11&to=20", reg).want(t, http.StatusOK, "").decode(t, &resp)
	if !resp.OK || len(resp.Chains) != 1 || resp.Chains[0].Chain != 1 || resp.Chains[0].FirstSeq != 11 || resp.Chains[0].LastSeq != 20 {
		t.Errorf("chain 1, 11 to 20: %s", mustJSON(resp))
	}
	e.get("/v1/audit/verify?chain=9", reg).want(t, http.StatusNotFound, "audit_chain_not_found")
	e.get("/v1/audit/verify?from=0", reg).want(t, http.StatusBadRequest, "invalid_parameter")
	e.get("/v1/audit/verify?from=5&to=4", reg).want(t, http.StatusBadRequest, "invalid_parameter")

	// Tampering: the stored row of chain 1, seq 17 is replaced by one
	// saying the request was denied (same sorting key, so FINAL keeps the
	// forgery), with its sealed hash and canonical bytes left alone.
	victim := rows[slices.IndexFunc(rows, func(r schema.AuditEventRow) bool { return r.Chain == 1 && r.Seq == 17 })]
	var canonical string
	if err := e.store.Conn().QueryRow(context.Background(), "SELECT canonical FROM audit_events FINAL WHERE chain = 1 AND seq = 17").Scan(&canonical); err != nil {
		t.Fatal(err)
	}
	forged := victim.AccessEvent
	forged.Decision, forged.Reason, forged.Status = firmbridge.DecisionDeny, "consent_required", 403
	batch, err := e.store.Conn().PrepareBatch(context.Background(), "INSERT INTO audit_events (chain, seq, hash, canonical, source_offset, event_id, request_id, "+
		"occurred_at, subject, role, org, uscc, scopes, purpose, consent_id, decision, reason, status, client_addr, method, path)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(uint32(1), uint64(17), victim.Hash, canonical, uint64(0), forged.EventID, forged.RequestID, forged.OccurredAt, forged.Subject,
		forged.Role, forged.Org, forged.USCC, forged.Scopes, forged.Purpose, forged.ConsentID, forged.Decision, forged.Reason, uint16(forged.Status),
		forged.ClientAddr, forged.Method, forged.Path); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	e.get("/v1/audit/verify", reg).want(t, http.StatusOK, "").decode(t, &resp)
	// Before ClickHouse merges the forged row over the original, both are
	// there (inserted); after, only the forgery (altered). Either is caught
	// at seq 17.
	if resp.OK || resp.Failure == nil || resp.Failure.Chain != 1 || resp.Failure.Seq != 17 ||
		(resp.Failure.Kind != firmbridge.TamperAltered && resp.Failure.Kind != firmbridge.TamperInserted) ||
		!resp.Chains[0].OK || resp.Chains[1].OK {
		t.Errorf("tampered log: %s", mustJSON(resp))
	}
	// Verification needs the public keys.
	e.srv.AuditKeys = nil
	e.get("/v1/audit/verify", reg).want(t, http.StatusServiceUnavailable, "audit_verify_unavailable")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAudit_AuthFailureEventsLimited(t *testing.T) {
	clock := &ctClock{t: time.Date(2025, 11, 1, 10, 0, 30, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	e := newAuEnv(t, func(s *api.Server) {
		s.Now, s.Registry = clock.Now, reg
		s.AuthFailures.PerAddress, s.AuthFailures.Total = 3, 5
	})
	send := func(addr, auth string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/access-log", nil)
		req.RemoteAddr = addr + ":40000"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 5 { // 3 recorded, 2 dropped
		auth := "Bearer not-a-jwt"
		if i == 0 {
			auth = ""
		}
		if code := send("192.0.2.1", auth); code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d", code)
		}
	}
	for range 3 { // 2 recorded (the total of 5 is reached), 1 dropped
		send("192.0.2.2", "Bearer not-a-jwt")
	}
	events := e.audit.snapshot()
	if len(events) != 5 || e.srv.AuthFailures.Recorded() != 5 || e.srv.AuthFailures.Dropped() != 3 {
		t.Fatalf("%d events, %d recorded, %d dropped; want 5, 5, 3", len(events), e.srv.AuthFailures.Recorded(), e.srv.AuthFailures.Dropped())
	}
	for i, ev := range events {
		addr, reason := "192.0.2.1", "token_invalid"
		if i == 0 {
			reason = "token_missing"
		}
		if i >= 3 {
			addr = "192.0.2.2"
		}
		if ev.Decision != firmbridge.DecisionDeny || ev.Status != 401 || ev.Reason != reason || ev.ClientAddr != addr || ev.Role != "" ||
			ev.Org != "" || ev.Subject != "" || ev.Path != "/v1/access-log" || ev.EventID == "" || ev.RequestID == "" {
			t.Errorf("event %d: %+v", i, ev)
		}
	}
	if v := auCounter(t, reg, "firmbridge_api_auth_failure_events_dropped_total"); v != 3 {
		t.Errorf("dropped counter %v, want 3", v)
	}
	// The next minute has a fresh budget.
	clock.Advance(time.Minute)
	send("192.0.2.1", "Bearer not-a-jwt")
	if len(e.audit.snapshot()) != 6 {
		t.Errorf("a new window records again: %d events", len(e.audit.snapshot()))
	}
	// A valid token is not an authentication failure.
	req := httptest.NewRequest(http.MethodGet, "/v1/access-log", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(firmbridge.RoleBank, "BANK-1"))
	e.handler.ServeHTTP(httptest.NewRecorder(), req)
	if ev := e.audit.snapshot(); len(ev) != 7 || ev[6].Role != firmbridge.RoleBank || e.srv.AuthFailures.Recorded() != 6 {
		t.Errorf("after a valid request: %d events, %d failures recorded", len(ev), e.srv.AuthFailures.Recorded())
	}
}

func auCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
