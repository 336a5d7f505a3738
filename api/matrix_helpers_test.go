package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// The matrix tests' firms: mxFirm has tax, patent and operations data
// (loaded by profEnv.load, whose firm it is); mxOtherFirm has none.
const (
	mxFirm      = profFirm
	mxOtherFirm = "91110108MA01ABCD1E"
)

// mxClock is the servers' injected clock.
type mxClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *mxClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *mxClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mxEnv is one API server on a scratch ClickHouse database (migrated, with
// mxFirm's data) and scratch Kafka topics (consent events, raw tax records).
// It borrows from the other tests of the package: profEnv.load (the firm's
// data), memClients and MustCreateClient (auth_test.go), MustKey, attacks
// and attackNow (tokens_test.go), testLog (ingest_test.go).
type mxEnv struct {
	t       *testing.T
	store   *schema.Store
	tokens  *api.Tokens
	audit   *memAudit
	clock   *mxClock
	clients *api.Clients
	srv     *api.Server
	handler http.Handler
	kafka   kafka.Config
}

func newMxEnv(t *testing.T, edit func(*api.Server)) *mxEnv {
	t.Helper()
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t, firmbridge.TopicConsentEvents, firmbridge.RawTopic(firmbridge.DomainTax))
	events := kafka.NewConsentEvents(kcfg, kcfg.Topic(firmbridge.TopicConsentEvents))
	t.Cleanup(func() { events.Close() })
	raw := kafka.NewRawPublisher(kcfg)
	t.Cleanup(func() { raw.Close() })
	registry, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	clients, err := api.NewClients(&memClients{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	clients.Logger = logger
	prom := prometheus.NewRegistry()
	e := &mxEnv{
		t: t, store: store, kafka: kcfg, clients: clients, audit: &memAudit{},
		tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t)},
		clock:  &mxClock{t: time.Now().UTC().Truncate(time.Second)},
	}
	consents := schema.ConsentStore{Store: store}
	e.srv = &api.Server{Tokens: e.tokens, Consents: consents, Receipts: consents, Profiles: schema.ProfileReader{Store: store},
		Audit: e.audit, ConsentEvents: events, Raw: raw, Connectors: registry, Clients: clients,
		Metrics: api.NewMetrics(prom), Registry: prom, Logger: logger, Now: e.clock.Now,
		AuditQueries: schema.AuditQueries{Store: store}, AuditChains: schema.AuditStore{Store: store},
		AuditKeys: firmbridge.AuditKeys{e.tokens.Signing.ID: e.tokens.Signing.Public}}
	if edit != nil {
		edit(e.srv)
	}
	e.handler = e.srv.Handler()
	(&profEnv{store: store}).load(t)
	return e
}

// routes lists the router's routes as "METHOD /path/:param", sorted.
func (e *mxEnv) routes() []string {
	e.t.Helper()
	engine, ok := e.handler.(*gin.Engine)
	if !ok {
		e.t.Fatalf("Server.Handler() is a %T, not a *gin.Engine: the matrix cannot list its routes", e.handler)
	}
	var out []string
	for _, r := range engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return out
}

// token issues a one-hour token; the subject is user@org unless given.
func (e *mxEnv) token(role, org string, subject ...string) string {
	e.t.Helper()
	sub := "user@" + org
	if len(subject) > 0 {
		sub = subject[0]
	}
	tok, err := e.tokens.Issue(sub, role, org, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// mxBody is a request body sent as is with its content type.
type mxBody struct {
	ctype string
	data  string
}

// mxResp is an answer and the access events its request wrote.
type mxResp struct {
	method, path string
	code         int
	body         []byte
	header       http.Header
	events       []*firmbridge.AccessEvent
}

// do sends a request; token "" sends none. body is nil, an mxBody, or a
// value sent as JSON.
func (e *mxEnv) do(method, path, token string, body any) mxResp {
	e.t.Helper()
	var data []byte
	ctype := ""
	switch b := body.(type) {
	case nil:
	case mxBody:
		data, ctype = []byte(b.data), b.ctype
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
		ctype = "application/json"
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(data))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	n := e.audit.count()
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return mxResp{method: method, path: path, code: rec.Code, body: rec.Body.Bytes(), header: rec.Header(), events: e.audit.since(n)}
}

func (r mxResp) String() string {
	body := string(r.body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return r.method + " " + r.path + " → " + http.StatusText(r.code) + " " + body
}

// code is the problem+json code of an error answer, "" when the answer is
// not problem+json.
func (r mxResp) problemCode() string {
	if !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		return ""
	}
	var p api.Problem
	if json.Unmarshal(r.body, &p) != nil {
		return ""
	}
	return p.Code
}

// wantProblem checks status and problem code, and that the request wrote
// exactly one access event denying it for that code.
func (r mxResp) wantProblem(t *testing.T, status int, code string) {
	t.Helper()
	if r.code != status || r.problemCode() != code {
		t.Errorf("%s: got %d %q, want %d %s", r, r.code, r.problemCode(), status, code)
	}
	r.wantOneEvent(t, firmbridge.DecisionDeny, code, status)
}

// wantOK checks the status and the one access event allowing it.
func (r mxResp) wantOK(t *testing.T, status int) {
	t.Helper()
	if r.code != status {
		t.Errorf("%s: got %d, want %d", r, r.code, status)
	}
	r.wantOneEvent(t, firmbridge.DecisionAllow, "", status)
}

func (r mxResp) wantOneEvent(t *testing.T, decision, reason string, status int) *firmbridge.AccessEvent {
	t.Helper()
	if len(r.events) != 1 {
		t.Errorf("%s %s wrote %d access events, want exactly 1", r.method, r.path, len(r.events))
		return nil
	}
	ev := r.events[0]
	if ev.Decision != decision || ev.Reason != reason || ev.Status != status {
		t.Errorf("%s %s: access event %s/%q/%d, want %s/%q/%d", r.method, r.path, ev.Decision, ev.Reason, ev.Status, decision, reason, status)
	}
	return ev
}

// consentID is the id of the consent an answer carries.
func (r mxResp) consentID(t *testing.T) string {
	t.Helper()
	var c firmbridge.Consent
	if err := json.Unmarshal(r.body, &c); err != nil || c.ID == "" {
		t.Fatalf("%s: not a consent", r)
	}
	return c.ID
}

// grant is POST /v1/consents as firm's enterprise token; extra adds or
// replaces body fields.
func (e *mxEnv) grant(firm, grantee string, scopes []string, purpose string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"grantee": grantee, "scopes": scopes, "purpose": purpose}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do(http.MethodPost, "/v1/consents", e.token(firmbridge.RoleEnterprise, firm), body)
	if r.code != http.StatusCreated {
		e.t.Fatalf("grant: %s", r)
	}
	return r.consentID(e.t)
}

// request is POST /v1/consent-requests as bank, for 30 days.
func (e *mxEnv) request(bank, firm string, scopes []string, purpose string) string {
	e.t.Helper()
	return e.requestFor(bank, firm, scopes, purpose, 30*24*time.Hour)
}

// requestFor is request for a consent running d from now.
func (e *mxEnv) requestFor(bank, firm string, scopes []string, purpose string, d time.Duration) string {
	e.t.Helper()
	r := e.do(http.MethodPost, "/v1/consent-requests", e.token(firmbridge.RoleBank, bank), map[string]any{"uscc": firm, "scopes": scopes,
		"purpose": purpose, "expires_at": e.clock.Now().Add(d).Format(time.RFC3339)})
	if r.code != http.StatusCreated {
		e.t.Fatalf("request: %s", r)
	}
	return r.consentID(e.t)
}

// act posts to a consent's or a request's action (revoke, approve,
// reject) as firm's enterprise token.
func (e *mxEnv) act(firm, path string) {
	e.t.Helper()
	if r := e.do(http.MethodPost, path, e.token(firmbridge.RoleEnterprise, firm), nil); r.code != http.StatusOK {
		e.t.Fatalf("%s", r)
	}
}

// mxSections lists the data sections present (non-null) in a profile's JSON.
func mxSections(t *testing.T, profile json.RawMessage) (present []string, listed []string) {
	t.Helper()
	var doc map[string]json.RawMessage
	var p firmbridge.Profile
	if err := json.Unmarshal(profile, &doc); err != nil || json.Unmarshal(profile, &p) != nil {
		t.Fatalf("not a profile: %s", profile)
	}
	for _, s := range []string{firmbridge.SectionIdentity, firmbridge.SectionTax, firmbridge.SectionPatents,
		firmbridge.SectionOperations, firmbridge.SectionConsistency} {
		if v, ok := doc[s]; ok && string(v) != "null" {
			present = append(present, s)
		}
	}
	return present, p.Sections
}

// mxSectionsFor is the sections a consent with scopes serves: identity,
// and each data section whose scopes it holds.
func mxSectionsFor(scopes []string) []string {
	out := []string{firmbridge.SectionIdentity}
	for _, s := range []string{firmbridge.SectionTax, firmbridge.SectionPatents, firmbridge.SectionOperations, firmbridge.SectionConsistency} {
		ok := true
		for _, need := range firmbridge.SectionScopes[s] {
			ok = ok && slices.Contains(scopes, need)
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}
