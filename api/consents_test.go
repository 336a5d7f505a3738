package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

const (
	ctFirm  = "91350100M000100Y43"
	ctOther = "91110108MA01ABCD1E" // another firm
	ctBank  = "BANK-CT-001"
	ctBank2 = "BANK-CT-002"
)

// ctClock is the servers' injected clock.
type ctClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ctClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ctClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ctPublisher passes events to the real Kafka publisher, or fails while
// fail is set.
type ctPublisher struct {
	next firmbridge.ConsentEventPublisher
	fail atomic.Bool
}

func (p *ctPublisher) PublishConsentEvent(ctx context.Context, e *firmbridge.ConsentEvent) error {
	if p.fail.Load() {
		return errors.New("broker unreachable (test)")
	}
	return p.next.PublishConsentEvent(ctx, e)
}

// ctStore is the real consent store, whose consent writes fail while
// failSave is set.
type ctStore struct {
	schema.ConsentStore
	failSave atomic.Bool
}

func (s *ctStore) SaveConsent(ctx context.Context, c *firmbridge.Consent) error {
	if s.failSave.Load() {
		return errors.New("clickhouse unreachable (test)")
	}
	return s.ConsentStore.SaveConsent(ctx, c)
}

type ctLog struct{ t *testing.T }

func (w ctLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// consentEnv is an API on a scratch ClickHouse database and a scratch
// consent.events topic.
type consentEnv struct {
	t       *testing.T
	srv     *api.Server
	handler http.Handler
	tokens  *api.Tokens
	audit   *memAudit
	clock   *ctClock
	store   *ctStore
	kafka   kafka.Config
	topic   string
	pub     *ctPublisher
}

func newConsentEnv(t *testing.T) *consentEnv {
	t.Helper()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	topic := testenv.Topics(t, kcfg, "consent.events")[0]
	events := kafka.NewConsentEvents(kcfg, topic)
	t.Cleanup(func() { events.Close() })
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	env := &consentEnv{
		t:      t,
		tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key},
		audit:  &memAudit{},
		clock:  &ctClock{t: time.Now().UTC().Truncate(time.Second)},
		store:  &ctStore{ConsentStore: schema.ConsentStore{Store: store}},
		kafka:  kcfg,
		topic:  topic,
		pub:    &ctPublisher{next: events},
	}
	// The firms exist, so that a profile read under consent answers 200.
	ctx := context.Background()
	batch, err := store.Conn().PrepareBatch(ctx, "INSERT INTO firms (uscc, name, record_id, source, schema_version, observed_at, ingested_at, version)")
	if err != nil {
		t.Fatal(err)
	}
	for _, uscc := range []string{ctFirm, ctOther} {
		at := time.Date(2024, 4, 16, 8, 0, 0, 0, time.UTC)
		if err := batch.Append(uscc, "测试科技有限公司 "+uscc, "firm-"+uscc, "tax.vat_return", uint16(1), at, at, firmbridge.VersionOf(at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	env.srv = env.newServer()
	env.handler = env.srv.Handler()
	return env
}

// newServer builds an API instance on the environment's store, key, topic
// and clock: a second one stands for another instance.
func (e *consentEnv) newServer() *api.Server {
	return &api.Server{Tokens: e.tokens, Consents: e.store, Receipts: e.store.ConsentStore,
		Profiles: schema.ProfileReader{Store: e.store.Store}, Audit: e.audit, ConsentEvents: e.pub,
		Logger: slog.New(slog.NewTextHandler(ctLog{e.t}, nil)), Now: e.clock.Now}
}

func (e *consentEnv) token(role, org string) string {
	e.t.Helper()
	tok, err := e.tokens.Issue("user@"+org, role, org, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// ctResponse is an answer and the one access event it wrote.
type ctResponse struct {
	code  int
	body  []byte
	ctype string
	event *firmbridge.AccessEvent
}

// call sends a request and checks that it wrote exactly one access event.
func (e *consentEnv) call(method, path, token string, body any) ctResponse {
	e.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	before := len(e.audit.snapshot())
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	events := e.audit.snapshot()
	if len(events) != before+1 {
		e.t.Fatalf("%s %s wrote %d access events, want exactly 1", method, path, len(events)-before)
	}
	ev := events[len(events)-1]
	wantDecision := firmbridge.DecisionAllow
	if rec.Code >= 400 {
		wantDecision = firmbridge.DecisionDeny
	}
	if ev.Decision != wantDecision || ev.Status != rec.Code || ev.Path != req.URL.Path {
		e.t.Errorf("%s %s: access event %+v does not match the answer %d", method, path, ev, rec.Code)
	}
	return ctResponse{code: rec.Code, body: rec.Body.Bytes(), ctype: rec.Header().Get("Content-Type"), event: ev}
}

// want checks the status, and for an error the problem+json code.
func (r ctResponse) want(t *testing.T, status int, code string) ctResponse {
	t.Helper()
	if r.code != status {
		t.Fatalf("status %d, want %d; body %s", r.code, status, r.body)
	}
	if code != "" {
		var p api.Problem
		if err := json.Unmarshal(r.body, &p); err != nil || p.Code != code || !strings.HasPrefix(r.ctype, "application/problem+json") {
			t.Fatalf("answer %s (%s), want problem+json code %s", r.body, r.ctype, code)
		}
		if r.event.Reason != code {
			t.Errorf("access event reason %q, want %q", r.event.Reason, code)
		}
	}
	return r
}

func (r ctResponse) problem(t *testing.T) api.Problem {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem: %s", r.body)
	}
	return p
}

// ctConsent is a consent as the API answers it, receipt included.
type ctConsent struct {
	firmbridge.Consent
	Receipt string `json:"receipt"`
}

func (r ctResponse) consent(t *testing.T) ctConsent {
	t.Helper()
	var c ctConsent
	if err := json.Unmarshal(r.body, &c); err != nil || c.ID == "" {
		t.Fatalf("not a consent: %s (%v)", r.body, err)
	}
	return c
}

func (e *consentEnv) jwks() []byte {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusOK {
		e.t.Fatalf("jwks: %d", rec.Code)
	}
	return rec.Body.Bytes()
}

// receipts lists a consent's receipts as the given party.
func (e *consentEnv) receipts(token, consentID string) []string {
	e.t.Helper()
	r := e.call(http.MethodGet, "/v1/consents/"+consentID+"/receipts", token, nil).want(e.t, http.StatusOK, "")
	var list api.ReceiptList
	if err := json.Unmarshal(r.body, &list); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, rc := range list.Receipts {
		if rc.Hash != api.ReceiptHash(rc.JWS) {
			e.t.Errorf("receipt %s: hash %s does not match", rc.ID, rc.Hash)
		}
		out = append(out, rc.JWS)
	}
	return out
}

// events waits until the topic holds at least n events and returns them all.
func (e *consentEnv) events(n int) []ctEvent {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := readConsentTopic(e.t, e.kafka, e.topic)
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				e.t.Fatalf("topic holds %d consent events, want at least %d", len(got), n)
			}
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type ctEvent struct {
	key string
	firmbridge.ConsentEvent
}

// readConsentTopic reads every message of a topic, across its partitions,
// in offset order per partition.
func readConsentTopic(t *testing.T, cfg kafka.Config, topic string) []ctEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", cfg.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []ctEvent
	for _, p := range parts {
		lc, err := kafkago.DialLeader(ctx, "tcp", net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)), topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := lc.ReadOffsets()
		if err == nil {
			_, err = lc.Seek(first, kafkago.SeekAbsolute)
		}
		_ = lc.SetReadDeadline(time.Now().Add(15 * time.Second))
		for off := first; err == nil && off < last; {
			var m kafkago.Message
			if m, err = lc.ReadMessage(10 << 20); err != nil {
				break
			}
			var ev ctEvent
			if err := json.Unmarshal(m.Value, &ev.ConsentEvent); err != nil {
				t.Fatalf("not a consent event: %s", m.Value)
			}
			ev.key = string(m.Key)
			out = append(out, ev)
			off = m.Offset + 1
		}
		lc.Close()
		if err != nil {
			t.Fatalf("read %s/%d: %v", topic, p.ID, err)
		}
	}
	return out
}

func eventsOf(evs []ctEvent, consentID string) []ctEvent {
	var out []ctEvent
	for _, e := range evs {
		if e.ConsentID == consentID {
			out = append(out, e)
		}
	}
	return out
}

func (e *consentEnv) requestBody(uscc string) map[string]any {
	return map[string]any{"uscc": uscc, "scopes": []string{"tax"}, "purpose": "credit_assessment",
		"expires_at": e.clock.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339), "note": "working-capital loan, 信用评估"}
}

func TestConsentRequest_ApproveThenBankReads(t *testing.T) {
	env := newConsentEnv(t)
	bank, firm := env.token(firmbridge.RoleBank, ctBank), env.token(firmbridge.RoleEnterprise, ctFirm)
	profile := "/v1/firms/" + ctFirm + "/profile?purpose=credit_assessment"

	req := env.call(http.MethodPost, "/v1/consent-requests", bank, env.requestBody(strings.ToLower(ctFirm))).want(t, http.StatusCreated, "").consent(t)
	if req.Status != firmbridge.ConsentPending || req.Grantee != ctBank || req.USCC != ctFirm || req.RequestedBy != "user@"+ctBank ||
		req.Note != "working-capital loan, 信用评估" || req.Receipt == "" {
		t.Fatalf("request %+v: want PENDING for %s from %s with its note and a receipt", req, ctFirm, ctBank)
	}
	env.call(http.MethodGet, profile, bank, nil).want(t, http.StatusForbidden, "consent_required")

	// The firm sees it among its pending requests; the bank sees its own.
	var listed struct {
		Requests []firmbridge.Consent `json:"consent_requests"`
	}
	r := env.call(http.MethodGet, "/v1/consent-requests?status=pending", firm, nil).want(t, http.StatusOK, "")
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed.Requests) != 1 || listed.Requests[0].ID != req.ID || listed.Requests[0].Note != req.Note {
		t.Fatalf("firm's pending requests: %s", r.body)
	}
	if r.event.USCC != ctFirm {
		t.Errorf("list access event names firm %q, want %s", r.event.USCC, ctFirm)
	}
	env.call(http.MethodGet, "/v1/consent-requests/"+req.ID, bank, nil).want(t, http.StatusOK, "")

	approved := env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", firm, nil).want(t, http.StatusOK, "").consent(t)
	if approved.ID != req.ID || approved.Status != firmbridge.ConsentActive || approved.Receipt == "" || approved.UpdatedBy != "user@"+ctFirm {
		t.Fatalf("approved %+v: want the same consent ACTIVE with a receipt", approved)
	}
	r = env.call(http.MethodGet, profile, bank, nil).want(t, http.StatusOK, "")
	var p firmbridge.Profile
	if err := json.Unmarshal(r.body, &p); err != nil || p.ConsentID != req.ID {
		t.Fatalf("profile %s: want one read under consent %s", r.body, req.ID)
	}
	if r.event.ConsentID != req.ID {
		t.Errorf("profile access event names consent %q, want %s", r.event.ConsentID, req.ID)
	}

	// Approving or rejecting it again is a conflict.
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", firm, nil).want(t, http.StatusConflict, "consent_request_not_pending")
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/reject", firm, nil).want(t, http.StatusConflict, "consent_request_not_pending")
	r = env.call(http.MethodGet, "/v1/consent-requests?status=PENDING", firm, nil).want(t, http.StatusOK, "")
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed.Requests) != 0 {
		t.Errorf("pending requests after approval: %s", r.body)
	}

	// Both sides hold the same chain: requested, approved.
	jwks := env.jwks()
	for _, tok := range []string{bank, firm} {
		chain := env.receipts(tok, req.ID)
		claims, err := api.VerifyReceiptChain(chain, jwks)
		if err != nil {
			t.Fatalf("receipt chain does not verify: %v", err)
		}
		if len(claims) != 2 || claims[0].Event != "requested" || claims[1].Event != "approved" || chain[1] != approved.Receipt ||
			claims[1].Consent.Status != firmbridge.ConsentActive || claims[1].Actor != "user@"+ctFirm || claims[0].Note != req.Note {
			t.Fatalf("chain %+v, want requested then approved", claims)
		}
	}

	// The events, keyed by the firm, carry the same receipts.
	evs := eventsOf(env.events(2), req.ID)
	if len(evs) != 2 || evs[0].Type != "requested" || evs[1].Type != "approved" {
		t.Fatalf("events %+v, want requested and approved", evs)
	}
	for _, ev := range evs {
		if ev.key != ctFirm || ev.USCC != ctFirm || ev.Grantee != ctBank || ev.EventID != req.ID+":"+ev.Type || ev.Time.IsZero() {
			t.Errorf("event %+v: want key and uscc %s, grantee %s, event id <consent>:<type>", ev, ctFirm, ctBank)
		}
	}
	if evs[1].Receipt != approved.Receipt || evs[1].Status != firmbridge.ConsentActive {
		t.Errorf("approved event %+v does not carry the approval receipt", evs[1])
	}
}

func TestConsentRequest_Reject(t *testing.T) {
	env := newConsentEnv(t)
	bank, firm := env.token(firmbridge.RoleBank, ctBank), env.token(firmbridge.RoleEnterprise, ctFirm)
	req := env.call(http.MethodPost, "/v1/consent-requests", bank, env.requestBody(ctFirm)).want(t, http.StatusCreated, "").consent(t)

	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/reject", firm, map[string]any{"reason": strings.Repeat("x", 501)}).
		want(t, http.StatusBadRequest, "invalid_reason")
	rejected := env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/reject", firm, map[string]any{"reason": "no loan planned"}).
		want(t, http.StatusOK, "").consent(t)
	if rejected.Status != firmbridge.ConsentRejected || rejected.Reason != "no loan planned" || rejected.Receipt == "" {
		t.Fatalf("rejected %+v", rejected)
	}
	env.call(http.MethodGet, "/v1/firms/"+ctFirm+"/profile?purpose=credit_assessment", bank, nil).want(t, http.StatusForbidden, "consent_required")
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", firm, nil).want(t, http.StatusConflict, "consent_request_not_pending")
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/reject", firm, nil).want(t, http.StatusConflict, "consent_request_not_pending")
	env.call(http.MethodPost, "/v1/consents/"+req.ID+"/revoke", firm, nil).want(t, http.StatusConflict, "consent_not_active")

	got := env.call(http.MethodGet, "/v1/consent-requests/"+req.ID, bank, nil).want(t, http.StatusOK, "").consent(t)
	if got.Status != firmbridge.ConsentRejected || got.Reason != "no loan planned" {
		t.Errorf("the bank sees %+v, want REJECTED with the reason", got)
	}
	claims, err := api.VerifyReceiptChain(env.receipts(bank, req.ID), env.jwks())
	if err != nil || len(claims) != 2 || claims[1].Event != "rejected" || claims[1].Reason != "no loan planned" {
		t.Fatalf("chain %+v (%v), want requested then rejected with its reason", claims, err)
	}
	if evs := eventsOf(env.events(2), req.ID); len(evs) != 2 || evs[1].Type != "rejected" || evs[1].Status != firmbridge.ConsentRejected {
		t.Errorf("events %+v, want requested and rejected", evs)
	}
}

func TestConsentRequest_OnlyTheFirmAnswers(t *testing.T) {
	env := newConsentEnv(t)
	bank, bank2 := env.token(firmbridge.RoleBank, ctBank), env.token(firmbridge.RoleBank, ctBank2)
	firm, other := env.token(firmbridge.RoleEnterprise, ctFirm), env.token(firmbridge.RoleEnterprise, ctOther)
	req := env.call(http.MethodPost, "/v1/consent-requests", bank, env.requestBody(ctFirm)).want(t, http.StatusCreated, "").consent(t)

	r := env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", other, nil).want(t, http.StatusForbidden, "forbidden")
	if r.event.USCC != ctFirm || r.event.ConsentID != req.ID {
		t.Errorf("the refusal's access event %+v does not name the firm and consent it targeted", r.event)
	}
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/reject", other, nil).want(t, http.StatusForbidden, "forbidden")
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", bank, nil).want(t, http.StatusForbidden, "role_not_allowed")
	env.call(http.MethodPost, "/v1/consent-requests", firm, env.requestBody(ctFirm)).want(t, http.StatusForbidden, "role_not_allowed")
	env.call(http.MethodGet, "/v1/consent-requests/"+req.ID, other, nil).want(t, http.StatusNotFound, "consent_request_not_found")
	env.call(http.MethodGet, "/v1/consent-requests/"+req.ID, bank2, nil).want(t, http.StatusNotFound, "consent_request_not_found")
	env.call(http.MethodGet, "/v1/consents/"+req.ID+"/receipts", bank2, nil).want(t, http.StatusNotFound, "consent_not_found")
	env.call(http.MethodGet, "/v1/consents/"+req.ID+"/receipts", env.token(firmbridge.RoleRegulator, "REG-1"), nil).
		want(t, http.StatusForbidden, "role_not_allowed")
	env.call(http.MethodPost, "/v1/consent-requests/00000000-0000-4000-8000-000000000000/approve", firm, nil).
		want(t, http.StatusNotFound, "consent_request_not_found")
	env.call(http.MethodPost, "/v1/consent-requests/bad%20id/approve", firm, nil).want(t, http.StatusBadRequest, "invalid_consent_id")
	env.call(http.MethodPost, "/v1/consent-requests/"+req.ID+"/approve", firm, map[string]any{"reason": "x"}).
		want(t, http.StatusBadRequest, "invalid_body")
	var listed struct {
		Requests []firmbridge.Consent `json:"consent_requests"`
	}
	for _, tok := range []string{other, bank2} {
		r := env.call(http.MethodGet, "/v1/consent-requests", tok, nil).want(t, http.StatusOK, "")
		if err := json.Unmarshal(r.body, &listed); err != nil || len(listed.Requests) != 0 {
			t.Errorf("a stranger lists %s", r.body)
		}
	}

	// A consent the firm granted itself is not a request.
	granted := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"patent"},
		"purpose": "risk_review"}).want(t, http.StatusCreated, "").consent(t)
	env.call(http.MethodPost, "/v1/consent-requests/"+granted.ID+"/approve", firm, nil).want(t, http.StatusNotFound, "consent_request_not_found")
	env.call(http.MethodGet, "/v1/consent-requests/"+granted.ID, firm, nil).want(t, http.StatusNotFound, "consent_request_not_found")
	r = env.call(http.MethodGet, "/v1/consent-requests", bank, nil).want(t, http.StatusOK, "")
	if err := json.Unmarshal(r.body, &listed); err != nil || len(listed.Requests) != 1 || listed.Requests[0].ID != req.ID {
		t.Errorf("the bank's requests: %s, want only %s", r.body, req.ID)
	}
	// A pending request is answered, not revoked.
	env.call(http.MethodPost, "/v1/consents/"+req.ID+"/revoke", firm, nil).want(t, http.StatusConflict, "consent_request_pending")
}

func TestConsentRequest_Validation(t *testing.T) {
	env := newConsentEnv(t)
	bank := env.token(firmbridge.RoleBank, ctBank)
	now := env.clock.Now()
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	day := 24 * time.Hour
	cases := map[string]struct {
		change func(map[string]any)
		code   string
		field  string
	}{
		"no uscc":           {func(b map[string]any) { delete(b, "uscc") }, "invalid_uscc", "uscc"},
		"bad check digit":   {func(b map[string]any) { b["uscc"] = "91350100M000100Y44" }, "invalid_uscc", "uscc"},
		"no scopes":         {func(b map[string]any) { b["scopes"] = []string{} }, "invalid_scope", "scopes"},
		"unknown scope":     {func(b map[string]any) { b["scopes"] = []string{"payroll"} }, "invalid_scope", "scopes"},
		"scope twice":       {func(b map[string]any) { b["scopes"] = []string{"tax", "tax"} }, "invalid_scope", "scopes"},
		"no purpose":        {func(b map[string]any) { delete(b, "purpose") }, "invalid_purpose", "purpose"},
		"unknown purpose":   {func(b map[string]any) { b["purpose"] = "marketing" }, "invalid_purpose", "purpose"},
		"no expiry":         {func(b map[string]any) { delete(b, "expires_at") }, "invalid_expiry", "expires_at"},
		"expiry passed":     {func(b map[string]any) { b["expires_at"] = at(-day) }, "invalid_expiry", "expires_at"},
		"beyond 90 days":    {func(b map[string]any) { b["expires_at"] = at(91 * day) }, "consent_too_long", "expires_at"},
		"start in the past": {func(b map[string]any) { b["valid_from"] = at(-day) }, "invalid_valid_from", "valid_from"},
		"start too far":     {func(b map[string]any) { b["valid_from"] = at(400 * day) }, "invalid_valid_from", "valid_from"},
		"data after expiry": {func(b map[string]any) { b["data_from"] = at(31 * day) }, "invalid_data_from", "data_from"},
		"note too long":     {func(b map[string]any) { b["note"] = strings.Repeat("注", 501) }, "invalid_note", "note"},
		"grantee given":     {func(b map[string]any) { b["grantee"] = "BANK-OTHER" }, "invalid_body", ""},
		"scopes not a list": {func(b map[string]any) { b["scopes"] = "tax" }, "invalid_body", "scopes"},
		"time not RFC 3339": {func(b map[string]any) { b["expires_at"] = "next month" }, "invalid_body", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			body := env.requestBody(ctFirm)
			tc.change(body)
			p := env.call(http.MethodPost, "/v1/consent-requests", bank, body).want(t, http.StatusBadRequest, tc.code).problem(t)
			if p.Field != tc.field || p.Detail == "" {
				t.Errorf("problem %+v, want field %q and a detail", p, tc.field)
			}
		})
	}
	env.call(http.MethodPost, "/v1/consent-requests", bank, `{"uscc":`).want(t, http.StatusBadRequest, "invalid_body")
	env.call(http.MethodPost, "/v1/consent-requests", bank, `{} {}`).want(t, http.StatusBadRequest, "invalid_body")
	env.call(http.MethodPost, "/v1/consent-requests", bank, `[]`).want(t, http.StatusBadRequest, "invalid_body")
	env.call(http.MethodPost, "/v1/consent-requests", bank, nil).want(t, http.StatusBadRequest, "invalid_body")
	env.call(http.MethodGet, "/v1/consent-requests?status=LIVE", bank, nil).want(t, http.StatusBadRequest, "invalid_status")
	env.call(http.MethodGet, "/v1/consents?uscc=nonsense", bank, nil).want(t, http.StatusBadRequest, "invalid_uscc")
	env.call(http.MethodPost, "/v1/consents", env.token(firmbridge.RoleEnterprise, ctFirm),
		map[string]any{"grantee": "BANK 1", "scopes": []string{"tax"}, "purpose": "risk_review"}).want(t, http.StatusBadRequest, "invalid_grantee")

	// A valid request with a data date written in China's offset keeps
	// that date.
	body := env.requestBody(ctFirm)
	body["data_from"] = "2024-03-01T00:00:00+08:00"
	body["valid_from"] = at(day)
	c := env.call(http.MethodPost, "/v1/consent-requests", bank, body).want(t, http.StatusCreated, "").consent(t)
	if c.DataFrom == nil || c.DataFrom.Format(time.DateOnly) != "2024-03-01" || !c.ValidFrom.Equal(now.Add(day)) {
		t.Errorf("request %+v: want data_from 2024-03-01 and valid_from tomorrow", c)
	}
}

func TestConsent_GrantRevokeReceiptsAndEvents(t *testing.T) {
	env := newConsentEnv(t)
	bank, firm := env.token(firmbridge.RoleBank, ctBank), env.token(firmbridge.RoleEnterprise, ctFirm)
	granted := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"tax", "patent"},
		"purpose": "loan_monitoring", "data_from": "2023-01-01T00:00:00Z"}).want(t, http.StatusCreated, "").consent(t)
	if granted.Receipt == "" || granted.Status != firmbridge.ConsentActive {
		t.Fatalf("grant %+v: want ACTIVE with a receipt", granted)
	}
	env.call(http.MethodGet, "/v1/firms/"+ctFirm+"/profile?purpose=loan_monitoring", bank, nil).want(t, http.StatusOK, "")
	revoked := env.call(http.MethodPost, "/v1/consents/"+granted.ID+"/revoke", firm, map[string]any{"reason": "loan repaid"}).
		want(t, http.StatusOK, "").consent(t)
	if revoked.Status != firmbridge.ConsentRevoked || revoked.Reason != "loan repaid" || revoked.Receipt == "" {
		t.Fatalf("revoke %+v", revoked)
	}
	env.call(http.MethodGet, "/v1/firms/"+ctFirm+"/profile?purpose=loan_monitoring", bank, nil).want(t, http.StatusForbidden, "consent_revoked")
	env.call(http.MethodPost, "/v1/consents/"+granted.ID+"/revoke", firm, nil).want(t, http.StatusConflict, "consent_not_active")

	// The revocation is on the topic, keyed by the firm, with its receipt.
	evs := eventsOf(env.events(2), granted.ID)
	if len(evs) != 2 || evs[0].Type != "granted" || evs[1].Type != "revoked" {
		t.Fatalf("events %+v, want granted then revoked", evs)
	}
	rev := evs[1]
	if rev.key != ctFirm || rev.Status != firmbridge.ConsentRevoked || rev.Receipt != revoked.Receipt || rev.Purpose != "loan_monitoring" ||
		!slices.Equal(rev.Scopes, []string{"tax", "patent"}) || rev.DataFrom == nil || rev.ConsentVersion <= evs[0].ConsentVersion {
		t.Errorf("revoked event %+v", rev)
	}

	// Receipts verify with the JWKS alone; anything altered does not.
	jwks := env.jwks()
	chain := env.receipts(firm, granted.ID)
	claims, err := api.VerifyReceiptChain(chain, jwks)
	if err != nil || len(claims) != 2 || claims[1].Reason != "loan repaid" || claims[1].Consent.DataFrom == nil {
		t.Fatalf("chain %+v (%v)", claims, err)
	}
	if claims[0].Issuer != "firmbridge" || !slices.Equal(claims[0].Audience, jwt.ClaimStrings{ctFirm, ctBank}) || claims[0].Subject != granted.ID {
		t.Errorf("registered claims %+v", claims[0].RegisteredClaims)
	}
	parts := strings.Split(chain[1], ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"REVOKED"`, `"ACTIVE"`, 1)
	other, _ := api.GenerateSigningKey()
	otherJWKS, _ := json.Marshal(map[string][]api.JWK{"keys": {other.JWK()}})
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + env.tokens.Signing.ID + `","typ":"consent-receipt+jwt"}`))
	for name, tc := range map[string]struct{ receipt, jwks string }{
		"payload altered":    {parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2], string(jwks)},
		"signature swapped":  {parts[0] + "." + parts[1] + "." + strings.Split(chain[0], ".")[2], string(jwks)},
		"another key's JWKS": {chain[1], string(otherJWKS)},
		"alg none":           {noneHeader + "." + parts[1] + ".", string(jwks)},
		"an access token":    {bank, string(jwks)},
		"not a JWS":          {"receipt", string(jwks)},
	} {
		if _, err := api.VerifyReceipt(tc.receipt, []byte(tc.jwks)); !errors.Is(err, api.ErrReceiptInvalid) {
			t.Errorf("%s: VerifyReceipt = %v, want ErrReceiptInvalid", name, err)
		}
	}
	if _, err := api.VerifyReceiptChain(chain[1:], jwks); !errors.Is(err, api.ErrReceiptInvalid) {
		t.Errorf("a chain missing its first receipt verified: %v", err)
	}
	if _, err := api.VerifyReceiptChain([]string{chain[1], chain[0]}, jwks); !errors.Is(err, api.ErrReceiptInvalid) {
		t.Errorf("a chain out of order verified: %v", err)
	}

	// After a key rotation the old receipts still verify while the old key
	// is published for verification.
	next, _ := api.GenerateSigningKey()
	env.tokens.Verify, env.tokens.Signing = []*api.SigningKey{env.tokens.Signing}, next
	if _, err := api.VerifyReceiptChain(chain, env.jwks()); err != nil {
		t.Errorf("after rotation: %v", err)
	}
}

func TestConsentEvents_FailClosedThenPublished(t *testing.T) {
	env := newConsentEnv(t)
	firm := env.token(firmbridge.RoleEnterprise, ctFirm)
	bank := env.token(firmbridge.RoleBank, ctBank)

	// Kafka refuses: the grant answers 503, but the change is stored and
	// its receipt waits in the outbox.
	env.pub.fail.Store(true)
	r := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"tax"},
		"purpose": "credit_assessment"}).want(t, http.StatusServiceUnavailable, "consent_event_unavailable")
	id := r.event.ConsentID
	if id == "" {
		t.Fatal("the access event does not name the consent")
	}
	got := env.call(http.MethodGet, "/v1/consents/"+id, bank, nil).want(t, http.StatusOK, "").consent(t)
	if got.Status != firmbridge.ConsentActive {
		t.Fatalf("after a failed publish the consent is %s, want ACTIVE (stored)", got.Status)
	}
	sw, err := env.srv.SweepConsents(context.Background())
	if err != nil || sw.Published != 0 {
		t.Fatalf("sweep within the grace period: %+v %v, want nothing published", sw, err)
	}

	// Kafka is back and the grace period over: the sweeper publishes it.
	env.pub.fail.Store(false)
	env.clock.Advance(api.DefaultReceiptGrace + time.Second)
	if sw, err = env.srv.SweepConsents(context.Background()); err != nil || sw.Published != 1 {
		t.Fatalf("sweep: %+v %v, want 1 published", sw, err)
	}
	evs := eventsOf(env.events(1), id)
	if len(evs) != 1 || evs[0].Type != "granted" {
		t.Fatalf("events %+v, want the granted event", evs)
	}
	if sw, err = env.srv.SweepConsents(context.Background()); err != nil || sw.Published != 0 {
		t.Errorf("second sweep: %+v %v, want nothing left", sw, err)
	}

	// ClickHouse refuses the consent write: nothing changes (503), and the
	// receipt written before it is voided, never published.
	env.store.failSave.Store(true)
	env.call(http.MethodPost, "/v1/consents/"+id+"/revoke", firm, nil).want(t, http.StatusServiceUnavailable, "consent_store_unavailable")
	env.store.failSave.Store(false)
	got = env.call(http.MethodGet, "/v1/consents/"+id, firm, nil).want(t, http.StatusOK, "").consent(t)
	if got.Status != firmbridge.ConsentActive {
		t.Fatalf("after a failed store the consent is %s, want ACTIVE", got.Status)
	}
	env.clock.Advance(api.DefaultReceiptGrace + time.Second)
	if sw, err = env.srv.SweepConsents(context.Background()); err != nil || sw.Voided != 1 || sw.Published != 0 {
		t.Fatalf("sweep: %+v %v, want the orphan receipt voided", sw, err)
	}
	if claims, err := api.VerifyReceiptChain(env.receipts(firm, id), env.jwks()); err != nil || len(claims) != 1 {
		t.Errorf("chain after the failed revoke: %d receipts (%v), want only granted", len(claims), err)
	}
	// The revocation retried goes through and chains to the grant.
	env.call(http.MethodPost, "/v1/consents/"+id+"/revoke", firm, nil).want(t, http.StatusOK, "")
	claims, err := api.VerifyReceiptChain(env.receipts(firm, id), env.jwks())
	if err != nil || len(claims) != 2 || claims[1].Event != "revoked" {
		t.Errorf("chain after the retried revoke: %+v (%v)", claims, err)
	}
	if evs := eventsOf(env.events(2), id); len(evs) != 2 || evs[1].Type != "revoked" {
		t.Errorf("events %+v, want granted and revoked only", evs)
	}
}

func TestConsentSweeper_Expires(t *testing.T) {
	env := newConsentEnv(t)
	bank, firm := env.token(firmbridge.RoleBank, ctBank), env.token(firmbridge.RoleEnterprise, ctFirm)
	day := 24 * time.Hour
	granted := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"tax"},
		"purpose": "credit_assessment", "expires_at": env.clock.Now().Add(day).Format(time.RFC3339)}).want(t, http.StatusCreated, "").consent(t)
	body := env.requestBody(ctFirm)
	body["expires_at"] = env.clock.Now().Add(2 * day).Format(time.RFC3339)
	lapsing := env.call(http.MethodPost, "/v1/consent-requests", bank, body).want(t, http.StatusCreated, "").consent(t)
	later := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"tax"},
		"purpose": "risk_review"}).want(t, http.StatusCreated, "").consent(t)

	if sw, err := env.srv.SweepConsents(context.Background()); err != nil || sw.Expired != 0 {
		t.Fatalf("sweep before any expiry: %+v %v", sw, err)
	}
	// Three days on, two API instances sweep at once.
	env.clock.Advance(3 * day)
	env.call(http.MethodPost, "/v1/consent-requests/"+lapsing.ID+"/approve", firm, nil).want(t, http.StatusConflict, "consent_request_expired")
	second := env.newServer()
	var wg sync.WaitGroup
	sweeps := make([]api.ConsentSweep, 2)
	errs := make([]error, 2)
	for i, srv := range []*api.Server{env.srv, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sweeps[i], errs[i] = srv.SweepConsents(context.Background())
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || sweeps[0].Expired+sweeps[1].Expired < 2 {
		t.Fatalf("sweeps %+v %v, want both consents expired", sweeps, errs)
	}
	if sw, err := env.srv.SweepConsents(context.Background()); err != nil || sw.Expired != 0 {
		t.Errorf("a third sweep expired %+v (%v), want nothing", sw, err)
	}

	jwks := env.jwks()
	for _, c := range []ctConsent{granted, lapsing} {
		got := env.call(http.MethodGet, "/v1/consents/"+c.ID, firm, nil).want(t, http.StatusOK, "").consent(t)
		stored, err := env.store.Consent(context.Background(), c.ID)
		if err != nil || got.Status != firmbridge.ConsentExpired || stored.Status != firmbridge.ConsentExpired || !stored.UpdatedAt.Equal(c.ExpiresAt) {
			t.Errorf("consent %s: answered %s, stored %+v (%v); want EXPIRED stored at its expiry", c.ID, got.Status, stored, err)
		}
		chain := env.receipts(firm, c.ID)
		claims, err := api.VerifyReceiptChain(chain, jwks)
		if err != nil || len(claims) != 2 || claims[1].Event != "expired" || claims[1].Actor != api.ExpiryActor ||
			!claims[1].IssuedAt.Equal(c.ExpiresAt) || claims[1].Consent.Status != firmbridge.ConsentExpired {
			t.Errorf("consent %s: chain %+v (%v), want its expiry receipt dated at the expiry", c.ID, claims, err)
		}
		// Two sweepers, one receipt row, and every event carries it.
		var rows uint64
		if err := env.store.Conn().QueryRow(context.Background(), "SELECT count() FROM consent_receipts FINAL WHERE receipt_id = ?", c.ID+":expired").Scan(&rows); err != nil || rows != 1 {
			t.Errorf("consent %s: %d expiry receipt rows (%v), want 1", c.ID, rows, err)
		}
		evs := eventsOf(env.events(5), c.ID)
		var expired []ctEvent
		for _, ev := range evs {
			if ev.Type == "expired" {
				expired = append(expired, ev)
			}
		}
		if len(expired) == 0 || len(expired) > 2 {
			t.Fatalf("consent %s: %d expired events, want 1 (2 when both sweepers published it)", c.ID, len(expired))
		}
		for _, ev := range expired {
			if ev.Receipt != chain[1] || ev.EventID != c.ID+":expired" || ev.Status != firmbridge.ConsentExpired || ev.key != ctFirm {
				t.Errorf("expired event %+v does not carry the stored receipt", ev)
			}
		}
	}
	env.call(http.MethodGet, "/v1/firms/"+ctFirm+"/profile?purpose=credit_assessment", bank, nil).want(t, http.StatusForbidden, "consent_expired")
	env.call(http.MethodPost, "/v1/consents/"+granted.ID+"/revoke", firm, nil).want(t, http.StatusConflict, "consent_not_active")
	if got := env.call(http.MethodGet, "/v1/consents/"+later.ID, bank, nil).want(t, http.StatusOK, "").consent(t); got.Status != firmbridge.ConsentActive {
		t.Errorf("a consent not yet expired is %s", got.Status)
	}
}

func TestConsentSweeper_Runs(t *testing.T) {
	env := newConsentEnv(t)
	firm := env.token(firmbridge.RoleEnterprise, ctFirm)
	c := env.call(http.MethodPost, "/v1/consents", firm, map[string]any{"grantee": ctBank, "scopes": []string{"tax"},
		"purpose": "credit_assessment", "expires_at": env.clock.Now().Add(time.Hour).Format(time.RFC3339)}).want(t, http.StatusCreated, "").consent(t)
	env.clock.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { env.srv.RunConsentSweeper(ctx, 50*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		stored, err := env.store.Consent(context.Background(), c.ID)
		if err == nil && stored.Status == firmbridge.ConsentExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running sweeper did not expire consent %s: %+v %v", c.ID, stored, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs := eventsOf(env.events(2), c.ID); len(evs) != 2 || evs[1].Type != "expired" {
		t.Errorf("events %+v, want granted and expired", evs)
	}
}
