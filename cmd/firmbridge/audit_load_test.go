package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// The audit load test drives the API as `firmbridge serve` builds it
// (tokens, role matrix, consent cache following consent.events.v1, the
// audit guard, access events on the real Kafka with acks=all) and the audit
// sealer (ingest.Sealer into the real ClickHouse) with concurrent clients on
// loopback, then checks that the sealed log holds exactly one event per
// request that must yield one, and that every chain verifies.
//
// Which requests yield an event: every request under /v1 whose route exists
// (api/server.go), whatever its outcome: allowed, denied by the role matrix,
// the consent check or validation, and failed authentications (401), which
// the server below records without sampling (AuthFailureLimiter limits set
// above the request count). Requests that yield none are mixed in:
// /healthz and the JWKS. A request is matched to its event by the
// X-Request-ID it sends, which the event carries as request_id.
const (
	auditLoadRequests = 20_000
	auditLoadClients  = 12
	// auditLoadLimit bounds the load phase; requests not started by then
	// are not sent, and the checks hold for those that were.
	auditLoadLimit = 60 * time.Second
	auditLoadBank  = "BANK-LOAD-001"
	// Firms: consented ones (bank reads are allowed), firms without consent
	// (refused consent_required), and firms whose consent one client grants
	// and revokes over and over while the others read.
	auditLoadConsented = 60
	auditLoadBare      = 400
	auditLoadChurn     = 12
)

// auditLoadKind is a kind of request in the mix.
type auditLoadKind struct {
	name     string
	weight   int   // share of the random mix; 0 for the requests the churn client sends
	event    bool  // whether the request yields an access event
	statuses []int // the statuses it may be answered with
}

const (
	alKindProfileAllowed = iota
	alKindProfileNoConsent
	alKindProfileWrongPurpose
	alKindProfileWrongRole
	alKindProfileBadUSCC
	alKindConsentsFirm
	alKindConsentsBank
	alKindUnauthMissing
	alKindUnauthGarbage
	alKindUnauthForeignKey
	alKindUnauthExpired
	alKindHealth
	alKindJWKS
	alKindGrantSetup
	alKindChurnGrant
	alKindChurnRead
	alKindChurnRevoke
	alKindChurnReadRevoked
)

var auditLoadKinds = []auditLoadKind{
	alKindProfileAllowed:      {"bank reads a profile under consent", 40, true, []int{200}},
	alKindProfileNoConsent:    {"bank reads a profile without consent", 18, true, []int{403}},
	alKindProfileWrongPurpose: {"bank reads a profile for a purpose not granted", 4, true, []int{403}},
	alKindProfileWrongRole:    {"enterprise reads a profile (role matrix)", 4, true, []int{403}},
	alKindProfileBadUSCC:      {"bank reads a profile of an invalid USCC", 2, true, []int{400}},
	alKindConsentsFirm:        {"enterprise lists its consents", 10, true, []int{200}},
	alKindConsentsBank:        {"bank lists its consents for one firm", 8, true, []int{200}},
	alKindUnauthMissing:       {"no token (401)", 2, true, []int{401}},
	alKindUnauthGarbage:       {"malformed token (401)", 1, true, []int{401}},
	alKindUnauthForeignKey:    {"token signed by an unknown key (401)", 1, true, []int{401}},
	alKindUnauthExpired:       {"expired token (401)", 1, true, []int{401}},
	alKindHealth:              {"GET /healthz (no event)", 2, false, []int{200}},
	alKindJWKS:                {"GET /.well-known/jwks.json (no event)", 1, false, []int{200}},
	alKindGrantSetup:          {"enterprise grants consent (set-up)", 0, true, []int{201}},
	alKindChurnGrant:          {"enterprise grants consent (churn)", 0, true, []int{201}},
	alKindChurnRead:           {"bank reads under the fresh consent (churn)", 0, true, []int{200}},
	alKindChurnRevoke:         {"enterprise or bank revokes (churn)", 0, true, []int{200}},
	alKindChurnReadRevoked:    {"bank reads after the revocation (churn)", 0, true, []int{403}},
}

// auditLoadResult is what one request got.
type auditLoadResult struct {
	sent   bool
	kind   int
	status int
	code   string // the problem's code; empty for a success
	lat    time.Duration
}

type auditLoadRequest struct {
	kind                int
	method, path, token string
	body                string
}

func TestAuditLoad_EveryRequestSealedOnceAndChainsVerify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	kcfg.Partitions = 4 // four chains
	topics := testenv.Topics(t, kcfg, "audit", "dlq.audit", "consent.events")
	auditTopic, auditDLQ, consentTopic := topics[0], topics[1], topics[2]
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The sealer, as `firmbridge ingest` runs it, with a short digest interval.
	auditKey, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	audits := schema.AuditStore{Store: store}
	sealer := &ingest.Sealer{Brokers: kcfg.Brokers, Topic: auditTopic, GroupID: "test-" + auditTopic, DeadLetterTopic: auditDLQ,
		Store: audits, SigningKey: auditKey.Private, KeyID: auditKey.ID, DigestInterval: time.Second,
		BatchWait: 200 * time.Millisecond, Logger: logger}
	sealCtx, stopSealer := context.WithCancel(ctx)
	sealDone := make(chan error, 1)
	go func() { sealDone <- sealer.Run(sealCtx) }()
	sealerStopped := false
	stopSealing := func() {
		if sealerStopped {
			return
		}
		sealerStopped = true
		stopSealer()
		if err := <-sealDone; err != nil {
			t.Errorf("sealer: %v", err)
		}
	}
	defer stopSealing()

	// The API as serve builds it: consents cached and kept fresh by the
	// consent events, firm data only while digests are fresh, rate limits
	// off, every failed authentication recorded.
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key, Leeway: 30 * time.Second}
	auditLog := kafka.NewAuditLog(kcfg, auditTopic)
	defer auditLog.Close()
	consentEvents := kafka.NewConsentEvents(kcfg, consentTopic)
	defer consentEvents.Close()
	consentStore := schema.ConsentStore{Store: store}
	cache := &api.ConsentCache{Store: consentStore}
	var caughtUp atomic.Bool
	watch := &kafka.ConsentWatch{Config: kcfg, Topic: consentTopic, OnEvent: cache.Invalidate, Logger: logger,
		OnCaughtUp: func(asOf time.Time) { cache.CaughtUp(asOf); caughtUp.Store(true) }}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		// A topic just created may not answer yet; serve retries the same way
		// only by restarting, so retry here.
		for watchCtx.Err() == nil {
			if err := watch.Run(watchCtx); err != nil && watchCtx.Err() == nil {
				logger.Warn("consent watch; retrying", "err", err)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()
	reg := prometheus.NewRegistry()
	srv := &api.Server{Tokens: tokens, Consents: cache, Profiles: schema.ProfileReader{Store: store}, Audit: auditLog,
		ConsentEvents: consentEvents, Receipts: consentStore, Metrics: api.NewMetrics(reg), Registry: reg, Logger: logger,
		AuditGuard:   &api.AuditGuard{Clock: audits, MaxAge: 60 * time.Second},
		AuthFailures: api.AuthFailureLimiter{PerAddress: 10 * auditLoadRequests, Total: 10 * auditLoadRequests}}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	// Tokens and firms.
	issue := func(tk *api.Tokens, role, org string) string {
		tok, err := tk.Issue("load@"+org, role, org, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bankToken := issue(tokens, firmbridge.RoleBank, auditLoadBank)
	foreignKey, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	foreignToken := issue(&api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: foreignKey}, firmbridge.RoleBank, auditLoadBank)
	expiredToken := issue(&api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key,
		Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }}, firmbridge.RoleBank, auditLoadBank)
	firms := synth.Firms(7, auditLoadConsented+auditLoadBare+auditLoadChurn)
	consented, bare, churn := firms[:auditLoadConsented], firms[auditLoadConsented:auditLoadConsented+auditLoadBare], firms[auditLoadConsented+auditLoadBare:]
	firmTokens := map[string]string{}
	for _, f := range firms {
		firmTokens[f.USCC] = issue(tokens, firmbridge.RoleEnterprise, f.USCC)
	}

	// Every request goes through do, which numbers it, sends its number as
	// X-Request-ID and keeps what it got.
	runID := testenv.Suffix()
	results := make([]auditLoadResult, auditLoadRequests)
	var next atomic.Int64
	var transportErrs atomic.Int64
	var transportOnce sync.Once
	var firstTransportErr error
	transportErr := func(err error) {
		transportErrs.Add(1)
		transportOnce.Do(func() { firstTransportErr = err })
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 4 * auditLoadClients,
		MaxIdleConnsPerHost: 4 * auditLoadClients, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	do := func(r auditLoadRequest) (res *auditLoadResult, body []byte, ok bool) {
		i := next.Add(1) - 1
		if i >= auditLoadRequests {
			return nil, nil, false
		}
		res = &results[i]
		res.kind = r.kind
		// Not the load's context: its end must not cut requests short.
		req, err := http.NewRequestWithContext(ctx, r.method, ts.URL+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			return nil, nil, false
		}
		req.Header.Set("X-Request-ID", auditLoadRequestID(runID, int(i)))
		if r.token != "" {
			req.Header.Set("Authorization", "Bearer "+r.token)
		}
		if r.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		// Marked sent before the call: a request whose answer is lost may
		// still have been recorded, and the counts below must say so.
		res.sent = true
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			transportErr(fmt.Errorf("request %d (%s %s): %w", i, r.method, r.path, err))
			return res, nil, true
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		res.lat, res.status = time.Since(t0), resp.StatusCode
		if err != nil {
			transportErr(fmt.Errorf("request %d: read body: %w", i, err))
		}
		if resp.StatusCode >= 300 {
			var p api.Problem
			if json.Unmarshal(body, &p) == nil {
				res.code = p.Code
			}
		}
		return res, body, true
	}

	// The first digest of every chain must exist before firm data is
	// served, and the consent cache is used once the watch has caught up.
	auditLoadWait(t, 60*time.Second, "a signed digest of each of the 4 chains and the consent watch", func() bool {
		var chains uint64
		err := store.Conn().QueryRow(ctx, "SELECT uniqExact(chain) FROM audit_digests").Scan(&chains)
		return err == nil && chains >= 4 && caughtUp.Load()
	}, nil)

	// Set-up, counted like any other request: the consented firms grant.
	grant := func(kind int, f synth.Firm) (*auditLoadResult, string, bool) {
		res, body, ok := do(auditLoadRequest{kind: kind, method: http.MethodPost, path: "/v1/consents", token: firmTokens[f.USCC],
			body: `{"grantee":"` + auditLoadBank + `","scopes":["tax"],"purpose":"credit_assessment"}`})
		if !ok || res.status != http.StatusCreated {
			return res, "", ok
		}
		var c firmbridge.Consent
		if err := json.Unmarshal(body, &c); err != nil {
			t.Errorf("grant for %s: %v", f.USCC, err)
		}
		return res, c.ID, true
	}
	var setup sync.WaitGroup
	for part := range 4 {
		setup.Add(1)
		go func() {
			defer setup.Done()
			for j := part; j < len(consented); j += 4 {
				if res, _, _ := grant(alKindGrantSetup, consented[j]); res == nil || res.status != http.StatusCreated {
					t.Errorf("set-up grant for %s: %+v", consented[j].USCC, res)
				}
			}
		}()
	}
	setup.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The load: random clients, and one churn client granting, reading and
	// revoking in turn. Each stops at the request budget or the time limit.
	loadStart := time.Now()
	loadCtx, stopLoad := context.WithTimeout(ctx, auditLoadLimit)
	defer stopLoad()
	totalWeight := 0
	for _, k := range auditLoadKinds {
		totalWeight += k.weight
	}
	pick := func(rng *rand.Rand) auditLoadRequest {
		n := rng.IntN(totalWeight)
		kind := 0
		for i, k := range auditLoadKinds {
			if n < k.weight {
				kind = i
				break
			}
			n -= k.weight
		}
		cf := consented[rng.IntN(len(consented))].USCC
		profile := func(uscc, purpose string) string {
			return "/v1/firms/" + uscc + "/profile?purpose=" + purpose
		}
		r := auditLoadRequest{kind: kind, method: http.MethodGet, token: bankToken}
		switch kind {
		case alKindProfileAllowed:
			r.path = profile(cf, firmbridge.PurposeCreditAssessment)
		case alKindProfileNoConsent:
			r.path = profile(bare[rng.IntN(len(bare))].USCC, firmbridge.PurposeCreditAssessment)
		case alKindProfileWrongPurpose:
			r.path = profile(cf, firmbridge.PurposeLoanMonitoring)
		case alKindProfileWrongRole:
			r.path, r.token = profile(cf, firmbridge.PurposeCreditAssessment), firmTokens[cf]
		case alKindProfileBadUSCC:
			r.path = profile(cf[:17]+auditLoadOtherCheck(cf[17]), firmbridge.PurposeCreditAssessment)
		case alKindConsentsFirm:
			f := consented
			if rng.IntN(2) == 0 {
				f = bare
			}
			uscc := f[rng.IntN(len(f))].USCC
			r.path, r.token = "/v1/consents", firmTokens[uscc]
		case alKindConsentsBank:
			r.path = "/v1/consents?uscc=" + cf
		case alKindUnauthMissing:
			r.path, r.token = profile(cf, firmbridge.PurposeCreditAssessment), ""
		case alKindUnauthGarbage:
			r.path, r.token = "/v1/consents", "not-a-token"
		case alKindUnauthForeignKey:
			r.path, r.token = profile(cf, firmbridge.PurposeCreditAssessment), foreignToken
		case alKindUnauthExpired:
			r.path, r.token = profile(cf, firmbridge.PurposeCreditAssessment), expiredToken
		case alKindHealth:
			r.path, r.token = "/healthz", ""
		case alKindJWKS:
			r.path, r.token = "/.well-known/jwks.json", ""
		}
		return r
	}
	var wg sync.WaitGroup
	for c := range auditLoadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 0xa0d17))
			for loadCtx.Err() == nil {
				if _, _, ok := do(pick(rng)); !ok {
					return
				}
			}
		}()
	}
	var churnCycles, churnFailures atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for cycle := 0; loadCtx.Err() == nil; cycle++ {
			f := churn[cycle%len(churn)]
			path := "/v1/firms/" + f.USCC + "/profile?purpose=" + firmbridge.PurposeCreditAssessment
			_, id, ok := grant(alKindChurnGrant, f)
			if !ok {
				return
			}
			if id == "" {
				churnFailures.Add(1)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if _, _, ok := do(auditLoadRequest{kind: alKindChurnRead, method: http.MethodGet, path: path, token: bankToken}); !ok {
				return
			}
			revoker := firmTokens[f.USCC] // the firm, or every other time the bank
			if cycle%2 == 1 {
				revoker = bankToken
			}
			if _, _, ok := do(auditLoadRequest{kind: alKindChurnRevoke, method: http.MethodPost, path: "/v1/consents/" + id + "/revoke", token: revoker}); !ok {
				return
			}
			if _, _, ok := do(auditLoadRequest{kind: alKindChurnReadRevoked, method: http.MethodGet, path: path, token: bankToken}); !ok {
				return
			}
			churnCycles.Add(1)
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	wg.Wait()
	loadTook := time.Since(loadStart)
	sent := int(min(next.Load(), auditLoadRequests))

	// What the clients saw: every status as expected, and the requests
	// that must have yielded an access event.
	want := map[string]*auditLoadResult{} // request id → result, for those with an event
	var unexpected []string
	byKind := make([][]time.Duration, len(auditLoadKinds))
	statusCount := map[int]int{}
	var all []time.Duration
	unauth := 0
	for i := range sent {
		r := &results[i]
		if !r.sent {
			continue
		}
		k := auditLoadKinds[r.kind]
		if k.event {
			want[auditLoadRequestID(runID, i)] = r
		}
		if r.status == http.StatusUnauthorized {
			unauth++
		}
		statusCount[r.status]++
		if r.status != 0 {
			byKind[r.kind] = append(byKind[r.kind], r.lat)
			all = append(all, r.lat)
		}
		if !slices.Contains(k.statuses, r.status) && len(unexpected) < 10 {
			unexpected = append(unexpected, fmt.Sprintf("request %d (%s): status %d %s", i, k.name, r.status, r.code))
		}
	}
	for _, u := range unexpected {
		t.Errorf("unexpected answer: %s", u)
	}
	if got := srv.AuthFailures.Recorded(); got != uint64(unauth) || srv.AuthFailures.Dropped() != 0 {
		t.Errorf("failed authentications: %d answered 401, %d recorded, %d dropped; want all recorded", unauth, got, srv.AuthFailures.Dropped())
	}
	t.Logf("load: %d requests (%d yield an access event) from %d clients + 1 churn client in %s: %.0f requests/s; %d churn cycles (grant, read, revoke, read), %d churn grants refused; statuses %v",
		sent, len(want), auditLoadClients, loadTook.Round(time.Millisecond), float64(sent)/loadTook.Seconds(), churnCycles.Load(), churnFailures.Load(), statusCount)
	t.Logf("latency by kind (ms):\n%s", auditLoadLatencyTable(byKind, all))
	if firstTransportErr != nil {
		// Whether the server saw such a request, and so recorded it, is
		// unknown: the counts below could not be exact.
		t.Fatalf("%d requests got no answer; first: %v", transportErrs.Load(), firstTransportErr)
	}
	if sent < auditLoadRequests {
		t.Logf("the time limit of %s stopped the load at %d of %d requests; the checks below hold for the requests sent", auditLoadLimit, sent, auditLoadRequests)
	}

	// Sealing: wait until the sealer stored as many events as there were
	// requests yielding one, then stop it, which signs a last digest.
	sealWait := time.Now()
	auditLoadWait(t, 60*time.Second, fmt.Sprintf("%d events sealed", len(want)), func() bool {
		return sealer.Stats().Sealed.Load() >= int64(len(want))
	}, func() string {
		var rows uint64
		_ = store.Conn().QueryRow(ctx, "SELECT count() FROM audit_events").Scan(&rows)
		st := sealer.Stats()
		return fmt.Sprintf("sealer: %d messages, %d sealed, %d dead letters, %d retries; audit_events holds %d rows",
			st.Messages.Load(), st.Sealed.Load(), st.DeadLetters.Load(), st.Retries.Load(), rows)
	})
	sealLag := time.Since(sealWait)
	// A moment for anything extra (a duplicate would show here), then stop.
	time.Sleep(time.Second)
	stopSealing()
	if n := sealer.Stats().DeadLetters.Load(); n != 0 {
		t.Errorf("%d access events dead-lettered by the sealer, want 0", n)
	}

	// The sealed log: one row per request, no other, no duplicate.
	var rows, final, events, requests, byFirm uint64
	if err := store.Conn().QueryRow(ctx, "SELECT count(), uniqExact(event_id), uniqExact(request_id) FROM audit_events").Scan(&rows, &events, &requests); err != nil {
		t.Fatal(err)
	}
	if err := store.Conn().QueryRow(ctx, "SELECT count() FROM audit_events FINAL").Scan(&final); err != nil {
		t.Fatal(err)
	}
	if err := store.Conn().QueryRow(ctx, "SELECT count() FROM audit_events_by_firm").Scan(&byFirm); err != nil {
		t.Fatal(err)
	}
	t.Logf("sealed: %d rows (%d with FINAL), %d distinct event ids, %d distinct request ids, %d rows in audit_events_by_firm; the last event was sealed %s after the load ended; sealer: %d messages, %d sealed, %d digests, %d retries",
		rows, final, events, requests, byFirm, sealLag.Round(time.Millisecond), sealer.Stats().Messages.Load(), sealer.Stats().Sealed.Load(),
		sealer.Stats().Digests.Load(), sealer.Stats().Retries.Load())
	n := uint64(len(want))
	if rows != n || final != n || events != n || requests != n || byFirm != n || sealer.Stats().Sealed.Load() != int64(n) {
		t.Errorf("want %d of each: rows %d, rows with FINAL %d, event ids %d, request ids %d, by-firm rows %d, sealed %d",
			n, rows, final, events, requests, byFirm, sealer.Stats().Sealed.Load())
	}

	// Each event is the one of its request: the status and reason the
	// client got, the decision that goes with them.
	q, err := store.Conn().Query(ctx, "SELECT request_id, status, decision, reason, role FROM audit_events")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var mismatches []string
	bad := 0
	for q.Next() {
		var rid, decision, reason, role string
		var status uint16
		if err := q.Scan(&rid, &status, &decision, &reason, &role); err != nil {
			t.Fatal(err)
		}
		r, ok := want[rid]
		wantDecision := firmbridge.DecisionDeny
		if ok && r.status < 300 {
			wantDecision = firmbridge.DecisionAllow
		}
		var problem string
		switch {
		case !ok:
			problem = "no request that yields an event has this id"
		case seen[rid]:
			problem = "a second event for this request"
		case int(status) != r.status || reason != r.code || decision != wantDecision:
			problem = fmt.Sprintf("event says %d %s %q, the client got %d %q", status, decision, reason, r.status, r.code)
		case (r.status == http.StatusUnauthorized) != (role == ""):
			problem = fmt.Sprintf("role %q on a %d", role, r.status)
		}
		seen[rid] = true
		if problem != "" {
			bad++
			if len(mismatches) < 10 {
				mismatches = append(mismatches, rid+": "+problem)
			}
		}
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	missing := 0
	for rid := range want {
		if !seen[rid] {
			missing++
			if len(mismatches) < 20 {
				mismatches = append(mismatches, rid+": no sealed event")
			}
		}
	}
	if bad > 0 || missing > 0 {
		t.Errorf("%d events do not match their request, %d requests have no event:\n%s", bad, missing, strings.Join(mismatches, "\n"))
	}

	// Every chain verifies with the digest key, and the shutdown digest
	// covers every event.
	keys := firmbridge.AuditKeys{auditKey.ID: auditKey.Public}
	chains, err := audits.AuditChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	verifyStart := time.Now()
	verified := 0
	var summary []string
	for _, chain := range chains {
		rep, err := audits.Verify(ctx, chain, 0, 0, keys)
		if err != nil {
			t.Fatal(err)
		}
		rep.RequireSigned()
		if !rep.OK() {
			t.Errorf("chain %d does not verify: %v", chain, rep.Failure)
		}
		verified += rep.Events
		summary = append(summary, fmt.Sprintf("chain %d: %d events, %d digests", chain, rep.Events, rep.Digests))
	}
	t.Logf("verified %d chains in %s: %s", len(chains), time.Since(verifyStart).Round(time.Millisecond), strings.Join(summary, "; "))
	if len(chains) != 4 || verified != len(want) {
		t.Errorf("verified %d events in %d chains, want %d in 4", verified, len(chains), len(want))
	}
}

func auditLoadRequestID(run string, i int) string { return "load-" + run + "-" + strconv.Itoa(i) }

// auditLoadOtherCheck returns a check character other than c, so the USCC
// is invalid.
func auditLoadOtherCheck(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// auditLoadWait polls cond until it holds, or fails the test after limit
// with what state says (when given).
func auditLoadWait(t *testing.T, limit time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			if state != nil {
				t.Fatalf("timed out after %s waiting for %s; %s", limit, what, state())
			}
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditLoadLatencyTable renders count and latency percentiles per kind.
func auditLoadLatencyTable(byKind [][]time.Duration, all []time.Duration) string {
	q := func(sorted []time.Duration, p float64) float64 {
		if len(sorted) == 0 {
			return 0
		}
		i := min(max(int(p*float64(len(sorted))+0.999999)-1, 0), len(sorted)-1)
		return float64(sorted[i]) / float64(time.Millisecond)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-52s %7s %7s %7s %7s %7s\n", "kind", "count", "p50", "p90", "p99", "max")
	line := func(name string, lat []time.Duration) {
		s := slices.Sorted(slices.Values(lat))
		fmt.Fprintf(&b, "%-52s %7d %7.1f %7.1f %7.1f %7.1f\n", name, len(s), q(s, 0.5), q(s, 0.9), q(s, 0.99), q(s, 1))
	}
	for i, lat := range byKind {
		if len(lat) > 0 {
			line(auditLoadKinds[i].name, lat)
		}
	}
	line("all", all)
	return b.String()
}
