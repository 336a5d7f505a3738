package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// alWalk reads every page of the caller's access log and checks that no
// entry comes twice and that each page but the last is full.
func alWalk(t *testing.T, e *auEnv, query, token string, limit int) (entries []api.AccessLogEntry, cursors []string) {
	t.Helper()
	seen := map[string]bool{}
	base := "/v1/access-log?limit=" + strconv.Itoa(limit)
	if query != "" {
		base += "&" + query
	}
	next := base
	for pages := 0; ; pages++ {
		var page api.AccessLogPage
		e.get(next, token).want(t, http.StatusOK, "").decode(t, &page)
		if len(page.Items) > limit || (page.NextCursor != nil && len(page.Items) != limit) {
			t.Fatalf("%s: page of %d entries, next %v", next, len(page.Items), page.NextCursor)
		}
		for _, it := range page.Items {
			if seen[it.EventID] {
				t.Fatalf("entry %s on two pages", it.EventID)
			}
			seen[it.EventID] = true
		}
		entries = append(entries, page.Items...)
		if page.NextCursor == nil {
			return entries, cursors
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		cursors = append(cursors, *page.NextCursor)
		next = base + "&cursor=" + url.QueryEscape(*page.NextCursor)
	}
}

func alIDs(entries []api.AccessLogEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.EventID)
	}
	return out
}

func TestAccessLog_Ownership(t *testing.T) {
	e := newAuEnv(t, nil)
	t0 := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	rows := auSeedMixed(e, 140, t0)
	byID := map[string]schema.AuditEventRow{}
	for _, r := range rows {
		byID[r.EventID] = r
	}

	firm1 := e.token(firmbridge.RoleEnterprise, auFirm1)
	entries, cursors := alWalk(t, e, "", firm1, 6)
	want := auNewestFirst(rows, func(r schema.AuditEventRow) bool { return r.USCC == auFirm1 && r.Role != firmbridge.RoleRegulator })
	if !reflect.DeepEqual(alIDs(entries), want) || len(cursors) == 0 {
		t.Fatalf("firm 1's log: %v\nwant %v", alIDs(entries), want)
	}
	institutions := map[string]bool{}
	for _, en := range entries {
		r := byID[en.EventID]
		institutions[en.Institution] = true
		if en.USCC != auFirm1 || en.Institution != r.Org || en.Role != r.Role || !en.OccurredAt.Equal(r.OccurredAt) ||
			!slices.Equal(en.Scopes, r.Scopes) || en.Purpose != r.Purpose || en.ConsentID != r.ConsentID || en.Decision != r.Decision ||
			en.Reason != r.Reason || en.Status != r.Status {
			t.Errorf("entry %+v does not match the event %+v", en, r)
		}
		// A firm sees which institution, not which of its users.
		if (r.Org == auFirm1) != (en.Subject != "") {
			t.Errorf("entry %+v: subject shown %v for an event of %s", en, en.Subject != "", r.Org)
		}
	}
	if !institutions["BANK-1"] || !institutions["BANK-2"] || !institutions[auFirm1] || institutions[auReg] {
		t.Errorf("firm 1 sees accesses by %v; want both banks and itself, not the regulator", institutions)
	}

	// Another firm never sees firm 1's log, and cannot page through it.
	firm2 := e.token(firmbridge.RoleEnterprise, strings.ToLower(auFirm2))
	entries2, _ := alWalk(t, e, "", firm2, 50)
	want2 := auNewestFirst(rows, func(r schema.AuditEventRow) bool { return r.USCC == auFirm2 && r.Role != firmbridge.RoleRegulator })
	if !reflect.DeepEqual(alIDs(entries2), want2) || len(want2) == 0 {
		t.Errorf("firm 2's log: %v, want %v", alIDs(entries2), want2)
	}
	e.get("/v1/access-log?limit=6&cursor="+url.QueryEscape(cursors[0]), firm2).want(t, http.StatusBadRequest, "invalid_cursor")
	r := e.get("/v1/access-log", firm2).want(t, http.StatusOK, "")
	if r.event.USCC != auFirm2 || r.event.Role != firmbridge.RoleEnterprise {
		t.Errorf("firm 2's access event %+v, want its USCC", r.event)
	}

	// A bank sees its own requests, every firm, and never another bank's.
	bank1 := e.token(firmbridge.RoleBank, "BANK-1")
	entriesB, cursorsB := alWalk(t, e, "", bank1, 9)
	wantB := auNewestFirst(rows, func(r schema.AuditEventRow) bool { return r.Org == "BANK-1" })
	if !reflect.DeepEqual(alIDs(entriesB), wantB) {
		t.Errorf("BANK-1's log: %v, want %v", alIDs(entriesB), wantB)
	}
	for _, en := range entriesB {
		if en.Institution != "BANK-1" || en.Subject != "user@BANK-1" {
			t.Errorf("BANK-1 sees %+v", en)
		}
	}
	bank2 := e.token(firmbridge.RoleBank, "BANK-2")
	e.get("/v1/access-log?limit=9&cursor="+url.QueryEscape(cursorsB[0]), bank2).want(t, http.StatusBadRequest, "invalid_cursor")
	entriesB2, _ := alWalk(t, e, "", bank2, 1000)
	for _, en := range entriesB2 {
		if en.Institution != "BANK-2" {
			t.Errorf("BANK-2 sees %+v", en)
		}
	}

	// Filters.
	from, to := t0.Add(6*time.Hour), t0.Add(14*time.Hour)
	entries, _ = alWalk(t, e, "decision=deny&from="+url.QueryEscape(from.Format(time.RFC3339))+"&to="+url.QueryEscape(to.Format(time.RFC3339)), bank1, 4)
	want = auNewestFirst(rows, func(r schema.AuditEventRow) bool {
		return r.Org == "BANK-1" && r.Decision == firmbridge.DecisionDeny && !r.OccurredAt.Before(from) && r.OccurredAt.Before(to)
	})
	if !reflect.DeepEqual(alIDs(entries), want) || len(want) == 0 {
		t.Errorf("BANK-1's denials from %s to %s: %v, want %v", from, to, alIDs(entries), want)
	}
	for _, bad := range []string{"decision=no", "limit=5000", "from=soon", "institution=BANK-2", "firm=" + auFirm2} {
		e.get("/v1/access-log?"+bad, bank1).want(t, http.StatusBadRequest, "invalid_parameter")
	}
	// An enterprise token whose org is not a USCC has no log.
	e.get("/v1/access-log", e.token(firmbridge.RoleEnterprise, "NOT-A-FIRM")).want(t, http.StatusForbidden, "enterprise_org_invalid")
}

// TestAccessLog_ThroughKafka follows accesses the whole way: the API
// writes their events to a scratch audit.access.v1 on the real Kafka, the
// test seals what the topic holds (chain = partition, as the sealer does),
// and the firm and the bank read them back from their access logs.
func TestAccessLog_ThroughKafka(t *testing.T) {
	e := newAuEnv(t, nil)
	kcfg := testenv.Kafka(t)
	topic := testenv.Topics(t, kcfg, "audit.access")[0]
	log := kafka.NewAuditLog(kcfg, topic)
	t.Cleanup(func() { log.Close() })
	e.srv.Audit = log
	e.srv.Receipts = schema.ConsentStore{Store: e.store}
	do := func(method, path, token, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec.Code
	}
	bank, firm := e.token(firmbridge.RoleBank, "BANK-K"), e.token(firmbridge.RoleEnterprise, auFirm1)
	profile := "/v1/firms/" + auFirm1 + "/profile?purpose=credit_assessment"
	if code := do(http.MethodGet, profile, bank, ""); code != http.StatusForbidden {
		t.Fatalf("read without consent: %d", code)
	}
	if code := do(http.MethodPost, "/v1/consents", firm, `{"grantee":"BANK-K","scopes":["tax"],"purpose":"credit_assessment"}`); code != http.StatusCreated {
		t.Fatalf("grant: %d", code)
	}
	if code := do(http.MethodGet, profile, bank, ""); code != http.StatusOK {
		t.Fatalf("read under consent: %d", code)
	}
	// Another bank's attempt shows in the firm's log, not in BANK-K's.
	if code := do(http.MethodGet, profile, e.token(firmbridge.RoleBank, "BANK-L"), ""); code != http.StatusForbidden {
		t.Fatalf("read by another bank: %d", code)
	}

	msgs := readTopic(t, kcfg, topic)
	if len(msgs) != 4 {
		t.Fatalf("topic holds %d events, want 4", len(msgs))
	}
	byChain := map[uint32][]*firmbridge.AccessEvent{}
	for _, m := range msgs {
		ev, err := firmbridge.DecodeAuditMessage(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		byChain[uint32(m.Partition)] = append(byChain[uint32(m.Partition)], ev)
	}
	for chain, evs := range byChain {
		e.seal(chain, evs...)
	}

	e.srv.Audit = e.audit // the reads below are checked one event each
	var page api.AccessLogPage
	e.get("/v1/access-log", firm).want(t, http.StatusOK, "").decode(t, &page)
	var got []string
	for _, en := range page.Items {
		got = append(got, en.Institution+" "+en.Decision+" "+en.Reason+" "+strings.Join(en.Scopes, ","))
	}
	slices.Sort(got)
	want := []string{auFirm1 + " allow  tax", "BANK-K allow  tax", "BANK-K deny consent_required ", "BANK-L deny consent_required "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("firm's log %q, want %q", got, want)
	}
	for _, en := range page.Items {
		if en.Institution == "BANK-K" && en.Decision == firmbridge.DecisionAllow && (en.ConsentID == "" || en.Purpose != "credit_assessment") {
			t.Errorf("the read under consent shows %+v, want its consent and purpose", en)
		}
	}
	e.get("/v1/access-log", bank).want(t, http.StatusOK, "").decode(t, &page)
	if len(page.Items) != 2 || page.Items[0].Decision != firmbridge.DecisionAllow || page.Items[1].Reason != "consent_required" {
		t.Errorf("BANK-K's log %+v, want its read and its refusal, newest first", page.Items)
	}
	// The sealed log verifies.
	var v api.AuditVerifyResponse
	e.get("/v1/audit/verify", e.token(firmbridge.RoleRegulator, auReg)).want(t, http.StatusOK, "").decode(t, &v)
	if !v.OK || len(v.Chains) != len(byChain) {
		t.Errorf("verify: %s", mustJSON(v))
	}
}
