package schema_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// aqSealer seals events into two chains, as the sealer does with the two
// partitions of audit.access.v1, and stores them with the sealer's store.
type aqSealer struct {
	t      *testing.T
	audit  schema.AuditStore
	states [2]firmbridge.ChainState
	offset int64
	rows   []schema.AuditEventRow
}

func newAQSealer(t *testing.T, store *schema.Store) *aqSealer {
	return &aqSealer{t: t, audit: schema.AuditStore{Store: store}, states: [2]firmbridge.ChainState{firmbridge.NewChainState(0), firmbridge.NewChainState(1)}}
}

// seal stores events, each in the chain its org hashes to.
func (s *aqSealer) seal(events ...*firmbridge.AccessEvent) {
	s.t.Helper()
	var batch [2][]firmbridge.SealedEvent
	for _, e := range events {
		chain := len(e.Org) % 2
		sealed, err := s.states[chain].Seal(e, s.offset)
		if err != nil {
			s.t.Fatal(err)
		}
		s.offset++
		batch[chain] = append(batch[chain], sealed)
		e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Second)
		if e.Scopes == nil {
			e.Scopes = []string{}
		}
		s.rows = append(s.rows, schema.AuditEventRow{Chain: sealed.Chain, Seq: sealed.Seq, Hash: sealed.Hash.String(), AccessEvent: *e})
	}
	for chain := range batch {
		if len(batch[chain]) == 0 {
			continue
		}
		if err := s.audit.AppendSealed(context.Background(), s.states[chain], batch[chain]); err != nil {
			s.t.Fatal(err)
		}
	}
}

var aqEventN int

// aqEvent is an access event of a bank by default.
func aqEvent(org, uscc string, at time.Time, decision, reason string) *firmbridge.AccessEvent {
	aqEventN++
	status := 200
	if decision == firmbridge.DecisionDeny {
		status = 403
	}
	return &firmbridge.AccessEvent{EventID: fmt.Sprintf("ev-%06d", aqEventN), RequestID: fmt.Sprintf("rq-%06d", aqEventN), OccurredAt: at,
		Subject: "user@" + org, Role: firmbridge.RoleBank, Org: org, USCC: uscc, Scopes: []string{"tax"}, Purpose: firmbridge.PurposeCreditAssessment,
		Decision: decision, Reason: reason, Status: status, ClientAddr: "10.0.0.1", Method: "GET", Path: "/v1/firms/" + uscc + "/profile"}
}

var aqFirms = []string{"91350100M000100Y43", "91110108MA01ABCD1E", "91440300MA5FAKE01X", "91310000MA1FL00001"}

func aqFilter(rows []schema.AuditEventRow, f schema.AuditFilter) []schema.AuditEventRow {
	var out []schema.AuditEventRow
	for _, r := range rows {
		switch {
		case f.Org != "" && r.Org != f.Org, f.USCC != "" && r.USCC != f.USCC, f.Role != "" && r.Role != f.Role,
			f.Decision != "" && r.Decision != f.Decision, f.Reason != "" && r.Reason != f.Reason,
			!f.From.IsZero() && r.OccurredAt.Before(f.From), !f.To.IsZero() && !r.OccurredAt.Before(f.To),
			slices.Contains(f.ExcludeRoles, r.Role):
			continue
		}
		out = append(out, r)
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
	return out
}

func TestAuditQueries_EventsFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	q := schema.AuditQueries{Store: store}
	s := newAQSealer(t, store)
	t0 := time.Date(2025, 4, 30, 22, 0, 0, 0, time.UTC) // spans two monthly partitions
	orgs := []string{"BANK-A", "BANK-BB", "BANK-CCC"}
	reasons := []string{"consent_required", "consent_revoked", "purpose_not_granted"}
	var events []*firmbridge.AccessEvent
	for i := range 150 {
		// Three events share each second, so ties are broken by chain and seq.
		at := t0.Add(time.Duration(i/3) * 97 * time.Second)
		e := aqEvent(orgs[i%3], aqFirms[i%4], at, firmbridge.DecisionAllow, "")
		if i%5 == 0 {
			e.Decision, e.Reason, e.Status = firmbridge.DecisionDeny, reasons[i%3], 403
		}
		if i%11 == 0 {
			e.Role, e.Org = firmbridge.RoleEnterprise, e.USCC
		}
		events = append(events, e)
	}
	s.seal(events...)
	// A batch stored twice, as after a sealer crash, counts once.
	if err := s.audit.InsertSealedEvents(ctx, reseal(t, events[:10])); err != nil {
		t.Fatal(err)
	}

	filters := []schema.AuditFilter{
		{},
		{Org: "BANK-BB"},
		{USCC: aqFirms[1]},
		{Org: "BANK-A", USCC: aqFirms[2]},
		{Role: firmbridge.RoleEnterprise},
		{Decision: firmbridge.DecisionDeny},
		{Decision: firmbridge.DecisionDeny, Reason: "consent_revoked"},
		{From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour)},
		{USCC: aqFirms[0], From: t0.Add(30 * time.Minute), ExcludeRoles: []string{firmbridge.RoleEnterprise}},
		{Org: "NOBODY"},
	}
	for _, f := range filters {
		want := aqFilter(s.rows, f)
		for _, limit := range []int{7, 1000} {
			var got []schema.AuditEventRow
			var after *schema.AuditEventKey
			for pages := 0; ; pages++ {
				rows, next, err := q.AuditEvents(ctx, f, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) > limit || (next != nil && len(rows) != limit) {
					t.Fatalf("filter %+v: page of %d rows with next %v, limit %d", f, len(rows), next, limit)
				}
				got = append(got, rows...)
				if next == nil {
					break
				}
				if pages > 200 {
					t.Fatal("pagination does not end")
				}
				after = next
			}
			if !reflect.DeepEqual(aqKeys(got), aqKeys(want)) {
				t.Errorf("filter %+v, limit %d: got %d events %v, want %d %v", f, limit, len(got), aqKeys(got), len(want), aqKeys(want))
			} else if len(want) > 0 && !reflect.DeepEqual(got[0], want[0]) {
				t.Errorf("filter %+v: first row %+v, want %+v", f, got[0], want[0])
			}
		}
		// The stream holds the same events, oldest first.
		it, err := q.OpenAuditEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var streamed []schema.AuditEventRow
		for it.Next() {
			streamed = append(streamed, *it.Row())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		_ = it.Close()
		slices.Reverse(streamed)
		if !reflect.DeepEqual(aqKeys(streamed), aqKeys(want)) {
			t.Errorf("filter %+v: stream %v, want %v reversed", f, aqKeys(streamed), aqKeys(want))
		}
	}
}

// reseal seals events again from a fresh chain state, for a duplicate write.
func reseal(t *testing.T, events []*firmbridge.AccessEvent) []firmbridge.SealedEvent {
	t.Helper()
	states := [2]firmbridge.ChainState{firmbridge.NewChainState(0), firmbridge.NewChainState(1)}
	var out []firmbridge.SealedEvent
	for i, e := range events {
		sealed, err := states[len(e.Org)%2].Seal(e, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sealed)
	}
	return out
}

func aqKeys(rows []schema.AuditEventRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.EventID)
	}
	return out
}

// aqConsent saves a consent state and its receipts (event → issued at).
func aqConsent(t *testing.T, cs schema.ConsentStore, c firmbridge.Consent, receipts map[string]time.Time) {
	t.Helper()
	ctx := context.Background()
	if c.Scopes == nil {
		c.Scopes = []string{"tax"}
	}
	if c.Purpose == "" {
		c.Purpose = firmbridge.PurposeCreditAssessment
	}
	if c.UpdatedBy == "" {
		c.UpdatedBy = "someone"
	}
	if c.Version == 0 {
		c.Version = firmbridge.VersionOf(c.UpdatedAt)
	}
	if err := cs.SaveConsent(ctx, &c); err != nil {
		t.Fatal(err)
	}
	seq := 0
	for event, at := range receipts {
		seq++
		r := &firmbridge.ConsentReceipt{ID: c.ID + ":" + event, ConsentID: c.ID, USCC: c.USCC, Grantee: c.Grantee, Event: event, Seq: seq,
			IssuedAt: at, JWS: "x", Hash: "h", ConsentVersion: c.Version, State: firmbridge.ReceiptPublished, WrittenAt: at, Version: 1}
		if err := cs.SaveReceipt(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditQueries_StatsExact(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	q := schema.AuditQueries{Store: store}
	cs := schema.ConsentStore{Store: store}
	s := newAQSealer(t, store)
	day := func(d int, h int) time.Time { return time.Date(2025, 3, 1+d, h, 0, 0, 0, time.UTC) }
	firm := aqFirms[0]
	con := func(id, grantee, status string, created, validFrom, expires, updated time.Time) firmbridge.Consent {
		return firmbridge.Consent{ID: id, USCC: firm, Grantee: grantee, Status: status, ValidFrom: validFrom, ExpiresAt: expires,
			CreatedAt: created, UpdatedAt: updated}
	}
	const a, b = "BANK-A", "BANK-B"
	// c1: granted on day 0, active throughout.
	aqConsent(t, cs, con("c1", a, firmbridge.ConsentActive, day(0, 10), day(0, 10), day(10, 0), day(0, 10)),
		map[string]time.Time{"granted": day(0, 10)})
	// c2: granted before, expires on day 1 (still stored ACTIVE: not swept yet).
	aqConsent(t, cs, con("c2", a, firmbridge.ConsentActive, day(-9, 0), day(-9, 0), day(1, 12), day(-9, 0)),
		map[string]time.Time{"granted": day(-9, 0)})
	// c3: granted before, revoked on day 2.
	aqConsent(t, cs, con("c3", a, firmbridge.ConsentRevoked, day(-4, 0), day(-4, 0), day(60, 0), day(2, 9)),
		map[string]time.Time{"granted": day(-4, 0), "revoked": day(2, 9)})
	// c4: asked for on day 0, approved on day 1.
	aqConsent(t, cs, con("c4", a, firmbridge.ConsentActive, day(0, 8), day(1, 11), day(30, 0), day(1, 11)),
		map[string]time.Time{"requested": day(0, 8), "approved": day(1, 11)})
	// c5: a request that expired unanswered: never in force.
	aqConsent(t, cs, con("c5", a, firmbridge.ConsentExpired, day(-20, 0), day(-20, 0), day(1, 0), day(1, 0)),
		map[string]time.Time{"requested": day(-20, 0), "expired": day(1, 0)})
	// c6: granted on day 2, valid only from day 5.
	aqConsent(t, cs, con("c6", a, firmbridge.ConsentActive, day(2, 14), day(5, 0), day(40, 0), day(2, 14)),
		map[string]time.Time{"granted": day(2, 14)})
	// c7: a pending request.
	aqConsent(t, cs, con("c7", a, firmbridge.ConsentPending, day(1, 0), day(1, 0), day(20, 0), day(1, 0)),
		map[string]time.Time{"requested": day(1, 0)})
	// c8: expired (swept) before the range.
	aqConsent(t, cs, con("c8", a, firmbridge.ConsentExpired, day(-28, 0), day(-28, 0), day(-1, 0), day(-1, 0)),
		map[string]time.Time{"granted": day(-28, 0), "expired": day(-1, 0)})
	// c9: BANK-B, granted and revoked on day 1.
	aqConsent(t, cs, con("c9", b, firmbridge.ConsentRevoked, day(1, 9), day(1, 9), day(50, 0), day(1, 18)),
		map[string]time.Time{"granted": day(1, 9), "revoked": day(1, 18)})
	// c10: a consent granted without receipts (as the demo seeds them): counted from created_at.
	aqConsent(t, cs, con("c10", b, firmbridge.ConsentActive, day(2, 1), day(2, 1), day(9, 0), day(2, 1)), nil)

	deny := firmbridge.DecisionDeny
	allow := firmbridge.DecisionAllow
	failed := aqEvent("", "", day(0, 3), deny, "token_invalid")
	failed.Role = ""
	ent := aqEvent(firm, firm, day(1, 2), allow, "")
	ent.Role = firmbridge.RoleEnterprise
	events := []*firmbridge.AccessEvent{
		aqEvent(a, aqFirms[0], day(0, 1), allow, ""),
		aqEvent(a, aqFirms[1], day(0, 2), deny, "consent_required"),
		aqEvent(a, aqFirms[2], day(0, 23), deny, "consent_required"),
		aqEvent(a, aqFirms[0], day(1, 5), allow, ""),
		aqEvent(a, aqFirms[0], day(1, 6), allow, ""),
		aqEvent(a, aqFirms[0], day(2, 7), deny, "consent_revoked"),
		aqEvent(a, "", day(2, 8), allow, ""),         // a listing of consents: no firm
		aqEvent(a, aqFirms[3], day(3, 0), allow, ""), // outside the range
		aqEvent(b, aqFirms[3], day(1, 0), deny, "purpose_not_granted"),
		failed, ent,
	}
	s.seal(events...)
	if err := s.audit.InsertSealedEvents(ctx, reseal(t, events)); err != nil { // duplicates count once
		t.Fatal(err)
	}

	got, err := q.AuditStats(ctx, schema.AuditStatsQuery{From: day(0, 5), To: day(3, 0), Period: schema.PeriodDay})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		org                                      string
		d                                        int
		req, den                                 uint64
		reasons                                  map[string]uint64
		firms, granted, revoked, expired, active uint64
	}
	want := []row{ // ordered by institution: a USCC sorts before BANK-
		{firm, 1, 1, 0, map[string]uint64{}, 1, 0, 0, 0, 0},
		{a, 0, 3, 2, map[string]uint64{"consent_required": 2}, 3, 1, 0, 0, 3},
		{a, 1, 2, 0, map[string]uint64{}, 1, 1, 0, 1, 3},
		{a, 2, 2, 1, map[string]uint64{"consent_revoked": 1}, 1, 1, 1, 0, 2},
		{b, 1, 1, 1, map[string]uint64{"purpose_not_granted": 1}, 1, 1, 1, 0, 0},
		{b, 2, 0, 0, map[string]uint64{}, 0, 1, 0, 0, 1},
	}
	var wantStats []schema.AuditStats
	for _, w := range want {
		end := day(w.d+1, 0)
		wantStats = append(wantStats, schema.AuditStats{Institution: w.org, PeriodStart: day(w.d, 0), PeriodEnd: end, Requests: w.req,
			Denials: w.den, DenialsByReason: w.reasons, DistinctFirms: w.firms, ConsentsGranted: w.granted, ConsentsRevoked: w.revoked,
			ConsentsExpired: w.expired, ConsentsActive: w.active})
	}
	if !reflect.DeepEqual(got, wantStats) {
		t.Errorf("stats:\n got %s\nwant %s", aqStats(got), aqStats(wantStats))
	}

	// By month, one institution: the same numbers summed; active at the
	// end of the (partial) period.
	got, err = q.AuditStats(ctx, schema.AuditStatsQuery{From: day(0, 0), To: day(3, 0), Period: schema.PeriodMonth, Org: a})
	if err != nil {
		t.Fatal(err)
	}
	wantMonth := []schema.AuditStats{{Institution: a, PeriodStart: day(0, 0), PeriodEnd: day(3, 0), Requests: 7, Denials: 3,
		DenialsByReason: map[string]uint64{"consent_required": 2, "consent_revoked": 1}, DistinctFirms: 3, ConsentsGranted: 3,
		ConsentsRevoked: 1, ConsentsExpired: 1, ConsentsActive: 2}}
	if !reflect.DeepEqual(got, wantMonth) {
		t.Errorf("monthly stats:\n got %s\nwant %s", aqStats(got), aqStats(wantMonth))
	}
}

func aqStats(list []schema.AuditStats) string {
	var b strings.Builder
	for _, s := range list {
		fmt.Fprintf(&b, "\n  %s %s..%s req=%d den=%d %v firms=%d granted=%d revoked=%d expired=%d active=%d", s.Institution,
			s.PeriodStart.Format(time.DateTime), s.PeriodEnd.Format(time.DateTime), s.Requests, s.Denials, s.DenialsByReason,
			s.DistinctFirms, s.ConsentsGranted, s.ConsentsRevoked, s.ConsentsExpired, s.ConsentsActive)
	}
	return b.String()
}

func TestAuditQueries_Alerts(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	q := schema.AuditQueries{Store: store}
	cs := schema.ConsentStore{Store: store}
	s := newAQSealer(t, store)
	h0 := time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)
	hour := h0.Add(10 * time.Hour) // where the patterns are
	at := func(i int) time.Time { return hour.Add(time.Duration(i) * 10 * time.Second) }
	allow, deny := firmbridge.DecisionAllow, firmbridge.DecisionDeny
	var events []*firmbridge.AccessEvent
	add := func(org string, n, denials int, uscc func(i int) string, reason string) {
		for i := range n {
			if i < denials {
				events = append(events, aqEvent(org, uscc(i), at(i), deny, reason))
			} else {
				events = append(events, aqEvent(org, uscc(i), at(i), allow, ""))
			}
		}
	}
	one := func(int) string { return aqFirms[0] }
	many := func(i int) string { return fmt.Sprintf("FIRM-%03d", i) }
	// Denial rate: 10 of 25 fires (40% > 30%); 5 of 25 does not; 10 of 10
	// is below the minimum of 20 requests.
	add("DR-HIGH", 25, 10, one, "consent_expired")
	add("DR-LOW", 25, 5, one, "consent_expired")
	add("DR-FEW", 10, 10, one, "consent_expired")
	// Firms without consent: 12 distinct firms fire; 9 do not; 15 refusals
	// for one firm do not.
	add("FW-MANY", 12, 12, many, "consent_required")
	add("FW-FEW", 9, 9, many, "consent_required")
	add("FW-SAME", 15, 15, one, "consent_required")
	// After revocation: AR-X's consent is revoked at hour+1m; it then
	// reads under it once (allowed) and is refused consent_revoked once,
	// both counted; a read before, and a look at the consent itself
	// (not a data route), are not. AR-Y reads under a new consent.
	revokedAt := hour.Add(time.Minute)
	aqConsent(t, cs, firmbridge.Consent{ID: "ar-x", USCC: aqFirms[1], Grantee: "AR-X", Status: firmbridge.ConsentRevoked,
		ValidFrom: h0.Add(-48 * time.Hour), ExpiresAt: h0.Add(48 * time.Hour), CreatedAt: h0.Add(-48 * time.Hour), UpdatedAt: revokedAt}, nil)
	aqConsent(t, cs, firmbridge.Consent{ID: "ar-y", USCC: aqFirms[1], Grantee: "AR-Y", Status: firmbridge.ConsentRevoked,
		ValidFrom: h0.Add(-48 * time.Hour), ExpiresAt: h0.Add(48 * time.Hour), CreatedAt: h0.Add(-48 * time.Hour), UpdatedAt: revokedAt}, nil)
	aqConsent(t, cs, firmbridge.Consent{ID: "ar-y2", USCC: aqFirms[1], Grantee: "AR-Y", Status: firmbridge.ConsentActive,
		ValidFrom: revokedAt.Add(time.Minute), ExpiresAt: h0.Add(48 * time.Hour), CreatedAt: revokedAt.Add(time.Minute), UpdatedAt: revokedAt.Add(time.Minute)}, nil)
	before := aqEvent("AR-X", aqFirms[1], revokedAt.Add(-time.Second), allow, "")
	before.ConsentID = "ar-x"
	afterAllowed := aqEvent("AR-X", aqFirms[1], revokedAt.Add(5*time.Second), allow, "")
	afterAllowed.ConsentID = "ar-x"
	afterRefused := aqEvent("AR-X", aqFirms[1], revokedAt.Add(10*time.Minute), deny, "consent_revoked")
	lookAtConsent := aqEvent("AR-X", aqFirms[1], revokedAt.Add(11*time.Minute), allow, "")
	lookAtConsent.ConsentID, lookAtConsent.Path = "ar-x", "/v1/consents/ar-x"
	otherPurpose := aqEvent("AR-X", aqFirms[1], revokedAt.Add(12*time.Minute), deny, "consent_revoked")
	otherPurpose.Purpose = firmbridge.PurposeRiskReview
	newConsent := aqEvent("AR-Y", aqFirms[1], revokedAt.Add(3*time.Minute), allow, "")
	newConsent.ConsentID = "ar-y2"
	events = append(events, before, afterAllowed, afterRefused, lookAtConsent, otherPurpose, newConsent)
	// Burst: BU-X makes 10 requests an hour for the week before, then 60
	// (above 5 × 10 and the minimum of 50); BU-Y makes 20 an hour, then 60
	// (not above 5 × 20).
	for hb := 1; hb <= 7*24; hb++ {
		base := hour.Add(-time.Duration(hb) * time.Hour)
		for i := range 20 {
			if i < 10 {
				events = append(events, aqEvent("BU-X", aqFirms[0], base.Add(time.Duration(i)*time.Minute), allow, ""))
			}
			events = append(events, aqEvent("BU-Y", aqFirms[0], base.Add(time.Duration(i)*time.Minute), allow, ""))
		}
	}
	add("BU-X", 60, 0, one, "")
	add("BU-Y", 60, 0, one, "")
	// An enterprise's refusals do not count: the rules look at banks.
	for i := range 30 {
		e := aqEvent(aqFirms[2], aqFirms[2], at(i), deny, "consent_not_found")
		e.Role = firmbridge.RoleEnterprise
		events = append(events, e)
	}
	s.seal(events...)

	alerts, err := q.AuditAlerts(ctx, schema.AuditAlertQuery{From: h0, To: h0.Add(24 * time.Hour)}, schema.AlertRules{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range alerts {
		got = append(got, a.Rule+" "+a.Institution)
	}
	want := []string{"denial_rate DR-HIGH", "firms_without_consent FW-MANY", "access_after_revocation AR-X", "burst BU-X"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	byID := map[string]*firmbridge.AccessEvent{}
	for _, e := range events {
		byID[e.EventID] = e
	}
	for _, a := range alerts {
		if len(a.ExampleEventIDs) == 0 || len(a.ExampleEventIDs) > 5 || a.Message == "" || !a.WindowEnd.After(a.WindowStart) {
			t.Errorf("alert %+v: want 1 to 5 examples, a message and a window", a)
		}
		for _, id := range a.ExampleEventIDs {
			if e := byID[id]; e == nil || e.Org != a.Institution {
				t.Errorf("alert %s: example %s is not an event of %s", a.Rule, id, a.Institution)
			}
		}
		switch a.Rule {
		case schema.RuleDenialRate:
			if a.Numbers["requests"] != 25 || a.Numbers["denials"] != 10 || a.Numbers["denial_rate"] != 0.4 || a.Numbers["threshold"] != 0.3 ||
				!a.WindowStart.Equal(hour) || !a.WindowEnd.Equal(hour.Add(time.Hour)) {
				t.Errorf("denial rate alert %+v", a)
			}
			for _, id := range a.ExampleEventIDs {
				if byID[id].Decision != deny {
					t.Errorf("denial rate example %s is not a denial", id)
				}
			}
		case schema.RuleFirmsWithoutConsent:
			if a.Numbers["firms"] != 12 || a.Numbers["threshold"] != 10 || !a.WindowStart.Equal(h0) {
				t.Errorf("firms alert %+v", a)
			}
		case schema.RuleAfterRevocation:
			if a.Numbers["requests"] != 2 || a.ConsentID != "ar-x" || a.USCC != aqFirms[1] || !a.WindowStart.Equal(afterAllowed.OccurredAt) ||
				!a.WindowEnd.Equal(afterRefused.OccurredAt.Add(time.Second)) {
				t.Errorf("revocation alert %+v", a)
			}
			if ids := slices.Sorted(slices.Values(a.ExampleEventIDs)); !reflect.DeepEqual(ids, []string{afterAllowed.EventID, afterRefused.EventID}) {
				t.Errorf("revocation alert examples %v", ids)
			}
		case schema.RuleBurst:
			if a.Numbers["requests"] != 60 || a.Numbers["baseline_median"] != 10 || a.Numbers["threshold"] != 50 || !a.WindowStart.Equal(hour) {
				t.Errorf("burst alert %+v", a)
			}
		}
	}

	// Thresholds are configuration: a stricter denial rate catches DR-LOW
	// too; one rule and one institution can be asked for alone.
	alerts, err = q.AuditAlerts(ctx, schema.AuditAlertQuery{From: h0, To: h0.Add(24 * time.Hour), Rules: []string{schema.RuleDenialRate}},
		schema.AlertRules{DenialRateMax: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 2 || alerts[0].Institution != "DR-HIGH" || alerts[1].Institution != "DR-LOW" {
		t.Errorf("stricter denial rate: %+v, want DR-HIGH and DR-LOW", alerts)
	}
	alerts, err = q.AuditAlerts(ctx, schema.AuditAlertQuery{From: h0, To: h0.Add(24 * time.Hour), Org: "BU-X"}, schema.AlertRules{})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Rule != schema.RuleBurst {
		t.Errorf("alerts of BU-X: %+v, want the burst", alerts)
	}
	// Outside the pattern's hours nothing fires.
	alerts, err = q.AuditAlerts(ctx, schema.AuditAlertQuery{From: h0.Add(-72 * time.Hour), To: h0}, schema.AlertRules{})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 {
		t.Errorf("alerts in a normal period: %+v", alerts)
	}
}
