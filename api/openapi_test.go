package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// The OpenAPI document (api/openapi.yaml) is kept true by these tests:
//
//   - TestOpenAPI_DocumentValidates: kin-openapi validates it, and every
//     operation carries what the docs and the other tests rely on.
//   - TestOpenAPI_RoutesMatchDocument: its (method, path) pairs equal the
//     gin router's, both ways.
//   - TestOpenAPI_ResponsesConform: real answers of every operation, on
//     the real ClickHouse and Kafka, validate against it with kin-openapi's
//     openapi3filter (status documented, headers, body schema, and the
//     problem code among the codes listed for that status); the roles
//     each operation lists (x-roles) are the ones the router lets through;
//     and the access events it promises (x-access-event) are written. It
//     fails when a documented operation was never exercised.
//   - TestOpenAPI_JSONServed, TestDocs_*: what /openapi.json and /docs serve.

// oaUndocumented lists the routes the document may leave out, with why.
// It is empty: the infrastructure routes (/healthz, /readyz, /metrics,
// /.well-known/jwks.json, /openapi.json, /docs) are documented too, since
// operators, load balancers and verifiers of receipts call them like any
// client, and a route left out of the document is one nobody can find.
var oaUndocumented = map[string]string{}

func oaLoad(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := api.LoadOpenAPI(context.Background())
	if err != nil {
		t.Fatalf("the OpenAPI document does not load: %v", err)
	}
	return doc
}

// oaMethods are the methods an OpenAPI path item can hold.
var oaMethods = []string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}

// oaDocumented returns every "METHOD /path" of the document.
func oaDocumented(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for _, m := range oaMethods {
			if op := item.GetOperation(m); op != nil {
				out[m+" "+path] = op
			}
		}
	}
	return out
}

var oaGinParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// oaRouted returns every "METHOD /path" the router serves, in OpenAPI's
// path syntax ({id} for gin's :id and *id). The server is configured with
// every optional part, so that every route that can exist is registered.
func oaRouted(t *testing.T) map[string]bool {
	t.Helper()
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := &api.Server{Tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key},
		Registry: reg, Metrics: api.NewMetrics(reg), RateLimits: api.NewRateLimiter(nil, nil),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	engine, ok := srv.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() returns %T, not the *gin.Engine this test reads the routes of", srv.Handler())
	}
	out := map[string]bool{}
	for _, r := range engine.Routes() {
		out[r.Method+" "+oaGinParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return out
}

func TestOpenAPI_DocumentValidates(t *testing.T) {
	doc := oaLoad(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation(), openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableSchemaFormatValidation()); err != nil {
		t.Fatalf("strict validation: %v", err)
	}
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for _, key := range slices.Sorted(maps.Keys(oaDocumented(doc))) {
		op := oaDocumented(doc)[key]
		check := func(ok bool, format string, args ...any) {
			if !ok {
				t.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
			}
		}
		check(op.OperationID != "", "no operationId")
		if prev, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %s is also %s's", key, op.OperationID, prev)
		}
		ids[op.OperationID] = key
		check(op.Summary != "" && op.Description != "", "no summary or description")
		check(len(op.Tags) == 1 && tags[op.Tags[0]], "tags %v: want one tag declared at the top", op.Tags)
		_, hasEvent := op.Extensions["x-access-event"].(bool)
		check(hasEvent, "x-access-event (true or false) is missing")
		roles, hasRoles := op.Extensions["x-roles"].([]any)
		check(hasRoles, "x-roles is missing")
		check(op.Security != nil, "security is not stated")
		public := op.Security != nil && (len(*op.Security) == 0 || (len(*op.Security) == 1 && len((*op.Security)[0]) == 0))
		if key != "POST /v1/auth/token" { // authenticates clients, not roles
			check(public == (len(roles) == 0), "x-roles %v does not fit security %v", roles, op.Security)
		}
		for status, ref := range op.Responses.Map() {
			r := ref.Value
			check(r != nil && r.Description != nil && *r.Description != "", "response %s has no description", status)
			if r == nil || status[0] < '4' || len(r.Content) == 0 {
				continue
			}
			for ct, mt := range r.Content {
				check(len(api.ProblemCodes(mt.Schema)) > 0, "response %s (%s) lists no codes", status, ct)
			}
		}
		if strings.HasPrefix(key, "GET /v1/") || strings.HasPrefix(key, "POST /v1/") {
			if strings.HasPrefix(key, "POST /v1/auth/") {
				continue
			}
			for _, status := range []string{"401", "403", "429", "500"} {
				check(op.Responses.Value(status) != nil, "an authenticated route without a %s response", status)
			}
			r := op.Responses.Value("429")
			check(r != nil && r.Value != nil && r.Value.Headers["Retry-After"] != nil, "429 without Retry-After")
		}
	}
}

func TestOpenAPI_RoutesMatchDocument(t *testing.T) {
	documented := oaDocumented(oaLoad(t))
	routed := oaRouted(t)
	var missing, stale []string
	for route := range routed {
		if _, ok := documented[route]; !ok {
			if _, excused := oaUndocumented[route]; !excused {
				missing = append(missing, route)
			}
		}
	}
	for route := range documented {
		if !routed[route] {
			stale = append(stale, route)
		}
	}
	for route := range oaUndocumented {
		if !routed[route] {
			stale = append(stale, route+" (listed in oaUndocumented)")
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	for _, r := range missing {
		t.Errorf("route %s is served but not in api/openapi.yaml: document it (paths, parameters, bodies, responses and codes)", r)
	}
	for _, r := range stale {
		t.Errorf("route %s is in api/openapi.yaml but the router does not serve it: remove it or register the route", r)
	}
	if len(routed) < 20 {
		t.Fatalf("only %d routes read from the router; the drift check is not seeing them", len(routed))
	}
}

// oaPublicServer is a server with no services: enough for the public routes.
func oaPublicServer(t *testing.T) http.Handler {
	t.Helper()
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return srv.Handler()
}

func oaGet(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestOpenAPI_JSONServed(t *testing.T) {
	doc := oaLoad(t)
	rec := oaGet(t, oaPublicServer(t), "/openapi.json")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("/openapi.json is not valid JSON")
	}
	served, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("/openapi.json does not load: %v", err)
	}
	if err := served.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json does not validate: %v", err)
	}
	want, got := slices.Sorted(maps.Keys(oaDocumented(doc))), slices.Sorted(maps.Keys(oaDocumented(served)))
	if !slices.Equal(want, got) {
		t.Fatalf("/openapi.json has operations\n%v\nwant\n%v", got, want)
	}
	if len(served.Components.Schemas) != len(doc.Components.Schemas) {
		t.Errorf("/openapi.json has %d schemas, the document %d", len(served.Components.Schemas), len(doc.Components.Schemas))
	}
}

func TestDocs_NamesEveryPath(t *testing.T) {
	doc := oaLoad(t)
	rec := oaGet(t, oaPublicServer(t), "/docs")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	page := rec.Body.String()
	for _, path := range doc.Paths.InMatchingOrder() {
		if !strings.Contains(page, ">"+path+"<") {
			t.Errorf("/docs does not name path %s", path)
		}
	}
	for key, op := range oaDocumented(doc) {
		if !strings.Contains(page, op.OperationID) || !strings.Contains(page, html.EscapeString(op.Summary)) {
			t.Errorf("/docs lacks the operation %s (%s)", key, op.OperationID)
		}
	}
	for name := range doc.Components.Schemas {
		if !strings.Contains(page, `id="schema-`+name+`"`) {
			t.Errorf("/docs lacks schema %s", name)
		}
	}
	for _, code := range []string{"consent_required", "consent_revoked", "token_expired", "rate_limited", "invalid_client", "scope_not_granted"} {
		if !strings.Contains(page, "<code>"+code+"</code>") {
			t.Errorf("/docs does not list the code %s", code)
		}
	}
	if !strings.Contains(page, "Retry-After") {
		t.Errorf("/docs does not mention Retry-After")
	}
}

// TestDocs_SelfContained: the page must render on a network that reaches
// nothing but the API: no script, and no resource from anywhere.
func TestDocs_SelfContained(t *testing.T) {
	page := oaGet(t, oaPublicServer(t), "/docs").Body.String()
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", "src="} {
		if strings.Contains(lower, bad) {
			t.Errorf("/docs contains %q", bad)
		}
	}
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if href := m[1]; !strings.HasPrefix(href, "#") && href != "openapi.json" {
			t.Errorf("/docs links to %q; only anchors and openapi.json are expected", href)
		}
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, "</html>") {
		t.Errorf("/docs is not a whole HTML page")
	}
}

// ---- Responses conform: the real API on the real ClickHouse and Kafka ----

// oaClientStore is the api.ClientStore on the real ClickHouse, as
// cmd/firmbridge wires it.
type oaClientStore struct{ s schema.ClientStore }

func (a oaClientStore) SaveClient(ctx context.Context, c *api.Client) error {
	return a.s.SaveClient(ctx, (*schema.Client)(c))
}

func (a oaClientStore) Client(ctx context.Context, id string) (*api.Client, error) {
	c, err := a.s.Client(ctx, id)
	return (*api.Client)(c), err
}

func (a oaClientStore) Clients(ctx context.Context) ([]*api.Client, error) {
	list, err := a.s.Clients(ctx)
	out := make([]*api.Client, len(list))
	for i, c := range list {
		out[i] = (*api.Client)(c)
	}
	return out, err
}

type oaLogWriter struct{ t *testing.T }

func (w oaLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// oaEnv is an API on a scratch database and scratch topics, and the
// document its answers are checked against.
type oaEnv struct {
	t       *testing.T
	doc     *openapi3.T
	base    string // the main server's URL
	tokens  *api.Tokens
	audit   *memAudit
	newSrv  func(edit func(*api.Server)) string // another server on the same services; its URL
	firms   []synth.Firm
	covered map[string]map[int]bool // "METHOD /path" → statuses validated
	// sealKey signs the digests of the audit chain seal() writes.
	sealKey    ed25519.PrivateKey
	auditStore schema.AuditStore
}

const oaAuditKeyID = "oa-audit-key"

// seal writes the access events recorded so far to audit chain 1 as the
// sealer would, with a signed digest, so the audit routes have a log to
// read. It returns how many events it sealed.
func (e *oaEnv) seal() int {
	e.t.Helper()
	e.audit.mu.Lock()
	events := slices.Clone(e.audit.events)
	e.audit.mu.Unlock()
	state := firmbridge.NewChainState(1)
	var sealed []firmbridge.SealedEvent
	for i, ev := range events {
		se, err := state.Seal(ev, int64(i))
		if err != nil {
			e.t.Fatalf("seal access event %d: %v", i, err)
		}
		sealed = append(sealed, se)
	}
	ctx := context.Background()
	if err := e.auditStore.AppendSealed(ctx, state, sealed); err != nil {
		e.t.Fatal(err)
	}
	d := firmbridge.NextAuditDigest(nil, state, time.Now())
	d.Sign(e.sealKey, oaAuditKeyID)
	if err := e.auditStore.WriteDigest(ctx, &d); err != nil {
		e.t.Fatal(err)
	}
	return len(sealed)
}

const oaBank = "BANK-OA-001"

var oaDecoders sync.Once

func newOAEnv(t *testing.T) *oaEnv {
	t.Helper()
	oaDecoders.Do(func() {
		// Bodies kin-openapi has no decoder for; their schemas are strings.
		for _, ct := range []string{"text/html", "application/x-ndjson", "application/ndjson", "application/jsonl"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	store := testenv.Store(t)
	names := []string{firmbridge.TopicConsentEvents}
	for _, d := range firmbridge.Domains {
		names = append(names, firmbridge.RawTopic(d))
	}
	kcfg := testenv.PrefixedKafka(t, names...)
	events := kafka.NewConsentEvents(kcfg, kcfg.Topic(firmbridge.TopicConsentEvents))
	t.Cleanup(func() { events.Close() })
	raw := kafka.NewRawPublisher(kcfg)
	t.Cleanup(func() { raw.Close() })
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	clients, err := api.NewClients(oaClientStore{schema.ClientStore{Store: store}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	_, sealKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &oaEnv{t: t, doc: oaLoad(t), tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key},
		audit: &memAudit{}, covered: map[string]map[int]bool{}, sealKey: sealKey, auditStore: schema.AuditStore{Store: store}}
	logger := slog.New(slog.NewTextHandler(oaLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.newSrv = func(edit func(*api.Server)) string {
		promReg := prometheus.NewRegistry()
		consents := schema.ConsentStore{Store: store}
		srv := &api.Server{Tokens: e.tokens, Consents: consents, Receipts: consents, Profiles: schema.ProfileReader{Store: store},
			Audit: e.audit, ConsentEvents: events, Raw: raw, Connectors: reg, Clients: clients,
			AuditQueries: schema.AuditQueries{Store: store}, AuditChains: schema.AuditStore{Store: store},
			AuditKeys: firmbridge.AuditKeys{oaAuditKeyID: e.sealKey.Public().(ed25519.PublicKey)},
			Registry:  promReg, Metrics: api.NewMetrics(promReg), Logger: logger}
		if edit != nil {
			edit(srv)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		return ts.URL
	}
	e.base = e.newSrv(nil)
	e.load(reg, store)
	return e
}

// load stores 30 months of generated provider data of a few firms,
// through the connectors, so that every profile section has content.
func (e *oaEnv) load(reg *connectors.Registry, store *schema.Store) {
	e.firms = synth.Firms(11, 4)
	var rows []firmbridge.Row
	rejected := 0
	for _, env := range synth.Envelopes(11, e.firms, 30, time.Now(), synth.Options{}) {
		r, err := reg.Normalize(context.Background(), env, env.ObservedAt)
		if err != nil {
			rejected++
			continue
		}
		rows = append(rows, r...)
	}
	if err := store.InsertRows(context.Background(), rows); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("loaded %d rows of %d firms (%d generated records rejected)", len(rows), len(e.firms), rejected)
}

func (e *oaEnv) token(role, org string) string {
	e.t.Helper()
	tok, err := e.tokens.Issue("someone@"+org, role, org, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// oaCall is one request: the operation by its documented path template.
type oaCall struct {
	method, path string            // "GET", "/v1/firms/{uscc}/profile"
	params       map[string]string // path parameters
	query        url.Values
	token        string      // bearer token, "" for none
	header       http.Header // more headers
	ctype        string
	body         any // nil, []byte, string or a value sent as JSON
	base         string
	want         int  // expected status; 0 for any
	noReqCheck   bool // the request is wrong on purpose: do not validate it
}

type oaResult struct {
	status int
	header http.Header
	body   []byte
}

func (r oaResult) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return m
}

func (r oaResult) code(t *testing.T) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// oaMiddlewareCodes are refusals the shared /v1 middleware answers, with an
// access event, before any handler runs.
var oaMiddlewareCodes = []string{"role_not_allowed", "rate_limited", "body_too_large", "body_unreadable"}

// do sends c and checks, against the document, the request (unless it is
// wrong on purpose), the response (status, headers, body, codes) and the
// access events the operation promises.
func (e *oaEnv) do(c oaCall) oaResult {
	t := e.t
	t.Helper()
	item := e.doc.Paths.Value(c.path)
	var op *openapi3.Operation
	if item != nil {
		op = item.GetOperation(c.method)
	}
	if op == nil {
		t.Fatalf("%s %s is not in the document", c.method, c.path)
	}
	route := &routers.Route{Spec: e.doc, Path: c.path, PathItem: item, Method: c.method, Operation: op}
	target := c.path
	for k, v := range c.params {
		target = strings.ReplaceAll(target, "{"+k+"}", url.PathEscape(v))
	}
	if len(c.query) > 0 {
		target += "?" + c.query.Encode()
	}
	var body []byte
	switch b := c.body.(type) {
	case nil:
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
		if c.ctype == "" {
			c.ctype = "application/json"
		}
	}
	base := c.base
	if base == "" {
		base = e.base
	}
	newReq := func() *http.Request {
		var rd io.Reader = http.NoBody
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(c.method, base+target, rd)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range c.header {
			req.Header[k] = vs
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		return req
	}
	name := c.method + " " + c.path
	reqInput := &openapi3filter.RequestValidationInput{Request: newReq(), PathParams: c.params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if !c.noReqCheck {
		if err := openapi3filter.ValidateRequest(context.Background(), reqInput); err != nil {
			t.Errorf("%s: the test's request does not conform to the document: %v", name, err)
		}
	}
	before := e.audit.count()
	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read the answer: %v", name, err)
	}
	res := oaResult{status: resp.StatusCode, header: resp.Header, body: got}
	events := e.audit.count() - before

	in := &openapi3filter.ResponseValidationInput{RequestValidationInput: reqInput, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	in.SetBodyBytes(got)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s → %d does not conform to the document: %v\nbody: %.600s", name, resp.StatusCode, err, got)
	}
	if c.want != 0 && resp.StatusCode != c.want {
		t.Fatalf("%s → %d, want %d: %.600s", name, resp.StatusCode, c.want, got)
	}

	promised, _ := op.Extensions["x-access-event"].(bool)
	code := res.code(t)
	switch {
	case resp.StatusCode == http.StatusUnauthorized && events > 1:
		t.Errorf("%s → 401 wrote %d access events; a 401 writes at most one", name, events)
	case resp.StatusCode == http.StatusUnauthorized: // bounded per address, so maybe none
	case promised && events == 0 && code != "audit_unavailable": // the event is what could not be written
		t.Errorf("%s → %d wrote no access event, but the document promises one", name, resp.StatusCode)
	case !promised && events != 0 && !slices.Contains(oaMiddlewareCodes, code):
		t.Errorf("%s → %d (%s) wrote %d access events; the document says it writes none", name, resp.StatusCode, code, events)
	}
	if e.covered[name] == nil {
		e.covered[name] = map[int]bool{}
	}
	e.covered[name][resp.StatusCode] = true
	return res
}

func TestOpenAPI_ResponsesConform(t *testing.T) {
	e := newOAEnv(t)
	f0, f1, f2, f3 := e.firms[0].USCC, e.firms[1].USCC, e.firms[2].USCC, e.firms[3].USCC
	bank, admin, provider := e.token("bank", oaBank), e.token("admin", "OPS"), e.token("provider", "PROV-OA")
	ent := func(uscc string) string { return e.token("enterprise", uscc) }
	all := []string{"tax", "patent", "operations"}
	now := time.Now().UTC()

	// 401 problem+json: no token, a malformed one, an expired one.
	e.do(oaCall{method: "GET", path: "/v1/consents", want: 401})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": f0},
		query: url.Values{"purpose": {"loan_monitoring"}}, token: "not.a.token", want: 401})
	past := &api.Tokens{Issuer: e.tokens.Issuer, Audience: e.tokens.Audience, Signing: e.tokens.Signing,
		Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }}
	expired, err := past.Issue("someone", "bank", oaBank, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(oaCall{method: "GET", path: "/v1/consents", token: expired, want: 401}); r.code(t) != "token_expired" {
		t.Errorf("expired token: code %s", r.code(t))
	}

	// Consent grants, 201; f1's with an earliest data date; f3 gets none.
	consentOf := map[string]string{}
	for _, uscc := range []string{f0, f1, f2} {
		body := map[string]any{"grantee": oaBank, "scopes": all, "purpose": "loan_monitoring"}
		if uscc == f1 {
			body["data_from"] = now.AddDate(-1, 0, 0).Format(time.RFC3339)
			body["expires_at"] = now.Add(200 * 24 * time.Hour).Format(time.RFC3339)
		}
		r := e.do(oaCall{method: "POST", path: "/v1/consents", token: ent(uscc), body: body, want: 201})
		consentOf[uscc] = r.json(t)["id"].(string)
	}
	e.do(oaCall{method: "POST", path: "/v1/consents", token: ent(f0), body: map[string]any{"grantee": oaBank, "scopes": []string{"tax"},
		"purpose": "credit_assessment", "expires_at": now.Add(400 * 24 * time.Hour).Format(time.RFC3339)}, want: 400})
	e.do(oaCall{method: "POST", path: "/v1/consents", token: ent(f0), body: `{"grantee":"B","scopes":["tax"],"purpose":"risk_review","x":1}`,
		ctype: "application/json", want: 400, noReqCheck: true})
	e.do(oaCall{method: "POST", path: "/v1/consents", token: ent(f0), ctype: "application/json",
		body: `{"grantee":"` + strings.Repeat("B", 1<<20) + `"}`, want: 413, noReqCheck: true})

	// Consent lists and reads, 200.
	e.do(oaCall{method: "GET", path: "/v1/consents", token: ent(f0), want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consents", token: bank, query: url.Values{"status": {"ACTIVE"}, "uscc": {f1}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consents", token: bank, query: url.Values{"status": {"GONE"}}, want: 400, noReqCheck: true})
	e.do(oaCall{method: "GET", path: "/v1/consents", token: ent(f0), query: url.Values{"uscc": {f1}}, want: 403})
	e.do(oaCall{method: "GET", path: "/v1/consents/{id}", params: map[string]string{"id": consentOf[f1]}, token: bank, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consents/{id}", params: map[string]string{"id": "no-such-consent"}, token: bank, want: 404})
	e.do(oaCall{method: "GET", path: "/v1/consents/{id}/receipts", params: map[string]string{"id": consentOf[f0]}, token: ent(f0), want: 200})

	// Profiles, 200, and refusals.
	for _, uscc := range []string{f0, f1} {
		e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": uscc}, token: bank,
			query: url.Values{"purpose": {"loan_monitoring"}}, want: 200})
	}
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": f0}, token: bank,
		query: url.Values{"purpose": {"credit_assessment"}}, want: 403})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": f3}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, want: 403})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": "91350100M000100Y44"}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, want: 400})

	// Detail listings, two pages each, and refusals.
	for _, listing := range []string{"tax", "patents", "operations"} {
		path := "/v1/firms/{uscc}/" + listing
		followed := 0
		for _, uscc := range []string{f0, f1, f2} {
			q := url.Values{"purpose": {"loan_monitoring"}, "limit": {"2"}}
			r := e.do(oaCall{method: "GET", path: path, params: map[string]string{"uscc": uscc}, token: bank, query: q, want: 200})
			if next, _ := r.json(t)["next_cursor"].(string); next != "" {
				q.Set("cursor", next)
				e.do(oaCall{method: "GET", path: path, params: map[string]string{"uscc": uscc}, token: bank, query: q, want: 200})
				followed++
			}
		}
		if followed == 0 {
			t.Errorf("%s: no listing had a second page; the test wants a cursor to follow", listing)
		}
		e.do(oaCall{method: "GET", path: path, params: map[string]string{"uscc": f0}, token: bank,
			query: url.Values{"purpose": {"loan_monitoring"}, "cursor": {"bogus"}}, want: 400})
		e.do(oaCall{method: "GET", path: path, params: map[string]string{"uscc": f3}, token: bank,
			query: url.Values{"purpose": {"loan_monitoring"}}, want: 403})
	}
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/tax", params: map[string]string{"uscc": f0}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}, "source": {"tax.vat_return", "tax.arrears"}, "from": {"2024-01"}, "to": {now.Format("2006-01-02")}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/patents", params: map[string]string{"uscc": f0}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}, "kind": {"invention"}, "status": {"granted", "pending"}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/operations", params: map[string]string{"uscc": f0}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}, "limit": {"0"}}, want: 400, noReqCheck: true})

	// A batch: allowed, denied and invalid firms; then only the tax scope.
	usccs := []string{f0, f1, f2, f3, "not-a-uscc", strings.ToLower(f0)}
	if r := e.do(oaCall{method: "POST", path: "/v1/profiles/batch", token: bank,
		body: map[string]any{"purpose": "loan_monitoring", "usccs": usccs}, want: 200}); r.json(t)["allowed"] != 3.0 {
		t.Errorf("batch: %.300s", r.body)
	}
	e.do(oaCall{method: "POST", path: "/v1/profiles/batch", token: bank,
		body: map[string]any{"purpose": "loan_monitoring", "usccs": []string{f0, f1}, "scopes": []string{"tax"}}, want: 200})
	e.do(oaCall{method: "POST", path: "/v1/profiles/batch", token: bank,
		body: map[string]any{"purpose": "loan_monitoring", "usccs": []string{}}, want: 400, noReqCheck: true})

	// Consent requests: ask, list, read, approve; ask, reject; ask, revoke refused.
	ask := func() string {
		r := e.do(oaCall{method: "POST", path: "/v1/consent-requests", token: bank, body: map[string]any{"uscc": f3, "scopes": []string{"tax"},
			"purpose": "credit_assessment", "expires_at": now.Add(30 * 24 * time.Hour).Format(time.RFC3339), "note": "working capital line"}, want: 201})
		return r.json(t)["id"].(string)
	}
	req1 := ask()
	e.do(oaCall{method: "GET", path: "/v1/consent-requests", token: ent(f3), want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consent-requests", token: bank, query: url.Values{"status": {"PENDING"}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consent-requests/{id}", params: map[string]string{"id": req1}, token: bank, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/consent-requests/{id}", params: map[string]string{"id": consentOf[f0]}, token: bank, want: 404})
	e.do(oaCall{method: "POST", path: "/v1/consent-requests/{id}/approve", params: map[string]string{"id": req1}, token: ent(f0), want: 403})
	e.do(oaCall{method: "POST", path: "/v1/consent-requests/{id}/approve", params: map[string]string{"id": req1}, token: ent(f3), want: 200})
	e.do(oaCall{method: "POST", path: "/v1/consent-requests/{id}/approve", params: map[string]string{"id": req1}, token: ent(f3), want: 409})
	req2 := ask()
	e.do(oaCall{method: "POST", path: "/v1/consent-requests/{id}/reject", params: map[string]string{"id": req2}, token: ent(f3),
		body: map[string]any{"reason": "no longer needed"}, want: 200})
	req3 := ask()
	e.do(oaCall{method: "POST", path: "/v1/consents/{id}/revoke", params: map[string]string{"id": req3}, token: ent(f3), want: 409})
	e.do(oaCall{method: "POST", path: "/v1/consent-requests", token: bank, body: map[string]any{"uscc": f3, "scopes": []string{"tax"},
		"purpose": "credit_assessment"}, want: 400, noReqCheck: true})

	// Revocation bites on the next request.
	e.do(oaCall{method: "POST", path: "/v1/consents/{id}/revoke", params: map[string]string{"id": consentOf[f0]}, token: ent(f0),
		body: map[string]any{"reason": "loan repaid"}, want: 200})
	if r := e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": f0}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, want: 403}); r.code(t) != "consent_revoked" {
		t.Errorf("after revocation: %s", r.body)
	}
	e.do(oaCall{method: "POST", path: "/v1/consents/{id}/revoke", params: map[string]string{"id": consentOf[f0]}, token: ent(f0), want: 409})
	e.do(oaCall{method: "POST", path: "/v1/consents/{id}/revoke", params: map[string]string{"id": consentOf[f2]}, token: bank, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/tax", params: map[string]string{"uscc": f2}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, want: 403})

	// OAuth2 clients and the token endpoint: its own error shape.
	created := e.do(oaCall{method: "POST", path: "/v1/admin/clients", token: admin,
		body: map[string]any{"name": "Demo bank loan system", "role": "bank", "org": "BANK-OA-002", "scopes": []string{"tax"}}, want: 201}).json(t)
	clientID, secret := created["client_id"].(string), created["client_secret"].(string)
	e.do(oaCall{method: "POST", path: "/v1/admin/clients", token: admin, body: map[string]any{"name": "x", "role": "nobody", "org": "X"}, want: 400, noReqCheck: true})
	e.do(oaCall{method: "GET", path: "/v1/admin/clients", token: admin, want: 200})
	form := func(v url.Values) oaCall {
		return oaCall{method: "POST", path: "/v1/auth/token", ctype: "application/x-www-form-urlencoded", body: v.Encode()}
	}
	c := form(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}})
	c.want = 200
	issued := e.do(c).json(t)["access_token"].(string)
	e.do(oaCall{method: "GET", path: "/v1/consents", token: issued, want: 200})
	// Its tax scope keeps it from patents, whatever consent says.
	for _, call := range []oaCall{
		{method: "GET", path: "/v1/firms/{uscc}/patents", params: map[string]string{"uscc": f0}, token: issued,
			query: url.Values{"purpose": {"loan_monitoring"}}, want: 403},
		{method: "POST", path: "/v1/profiles/batch", token: issued,
			body: map[string]any{"purpose": "loan_monitoring", "usccs": []string{f0}, "scopes": []string{"patent"}}, want: 403},
	} {
		if r := e.do(call); r.json(t)["code"] != "insufficient_scope" {
			t.Errorf("%s %s with a tax token: %s, want insufficient_scope", call.method, call.path, r.body)
		}
	}
	c = form(url.Values{"grant_type": {"client_credentials"}, "scope": {"tax"}})
	c.header, c.want = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+secret))}}, 200
	e.do(c)
	c = form(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {"fbcs_wrong"}})
	c.want = 401
	if r := e.do(c); r.json(t)["error"] != "invalid_client" || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("bad secret: %s %v", r.body, r.header)
	}
	c = form(url.Values{"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {secret}})
	c.want, c.noReqCheck = 400, true
	e.do(c)
	c = form(url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {"admin:all"}})
	c.want = 400
	e.do(c)
	e.do(oaCall{method: "POST", path: "/v1/admin/clients/{id}/disable", params: map[string]string{"id": clientID}, token: admin, want: 200})
	e.do(oaCall{method: "POST", path: "/v1/admin/clients/{id}/disable", params: map[string]string{"id": "no-such-client"}, token: admin, want: 404})

	// A provider push: one record accepted, one rejected; refusals.
	var envelope []byte
	for _, env := range synth.Envelopes(12, synth.Firms(12, 1), 2, time.Now(), synth.Options{}) {
		if env.Source == "tax.vat_return" {
			if envelope, err = json.Marshal(env); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	push := oaCall{method: "POST", path: "/v1/ingest/{source}", params: map[string]string{"source": "tax.vat_return"}, token: provider,
		ctype: "application/x-ndjson", body: string(envelope) + "\n" + `{"record_id":"x","source":"tax.vat_return"}` + "\n", want: 200}
	if r := e.do(push).json(t); r["accepted"] != 1.0 || r["rejected"] != 1.0 {
		t.Errorf("push: %v", r)
	}
	push.params, push.want = map[string]string{"source": "tax.nothing"}, 404
	e.do(push)
	push.params, push.ctype, push.want, push.noReqCheck = map[string]string{"source": "tax.vat_return"}, "text/plain", 415, true
	e.do(push)

	// Public routes.
	for _, p := range []string{"/.well-known/jwks.json", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} {
		e.do(oaCall{method: "GET", path: p, want: 200})
	}

	// 429 with Retry-After, 503s: other instances on the same services.
	limited := e.newSrv(func(s *api.Server) {
		s.RateLimits = api.NewRateLimiter(map[string]api.Rate{"bank": {PerSecond: 0.001, Burst: 1}}, nil)
	})
	e.do(oaCall{method: "GET", path: "/v1/consents", token: bank, base: limited, want: 200})
	if r := e.do(oaCall{method: "GET", path: "/v1/consents", token: bank, base: limited, want: 429}); r.header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	notReady := e.newSrv(func(s *api.Server) {
		s.Ready = func(context.Context) error { return errors.New("clickhouse down (test)") }
	})
	e.do(oaCall{method: "GET", path: "/readyz", base: notReady, want: 503})
	e.audit.fail.Store(true)
	e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/profile", params: map[string]string{"uscc": f1}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, want: 503})
	e.audit.fail.Store(false)

	// Firm data stops while the audit log is not sealed: nothing is yet.
	guarded := e.newSrv(func(s *api.Server) {
		s.AuditGuard = &api.AuditGuard{Clock: e.auditStore, MaxAge: time.Minute, CheckEvery: time.Nanosecond}
	})
	if r := e.do(oaCall{method: "GET", path: "/v1/firms/{uscc}/operations", params: map[string]string{"uscc": f1}, token: bank,
		query: url.Values{"purpose": {"loan_monitoring"}}, base: guarded, want: 503}); r.code(t) != "audit_stalled" {
		t.Errorf("unsealed audit log: %s", r.body)
	}

	// The audit log of everything above, sealed, as regulators and parties read it.
	t.Logf("sealed %d access events", e.seal())
	e.do(oaCall{method: "POST", path: "/v1/profiles/batch", token: bank, base: guarded,
		body: map[string]any{"purpose": "loan_monitoring", "usccs": []string{f1}}, want: 200})
	regulator := e.token("regulator", "CBIRC-OA")
	day := url.Values{"from": {now.Add(-time.Hour).Format(time.RFC3339)}}
	r := e.do(oaCall{method: "GET", path: "/v1/audit/events", token: regulator, query: url.Values{"limit": {"5"}}, want: 200})
	if next, _ := r.json(t)["next_cursor"].(string); next != "" {
		e.do(oaCall{method: "GET", path: "/v1/audit/events", token: regulator, query: url.Values{"limit": {"5"}, "cursor": {next}}, want: 200})
	} else {
		t.Errorf("audit events: one page only: %.300s", r.body)
	}
	e.do(oaCall{method: "GET", path: "/v1/audit/events", token: regulator, want: 200,
		query: url.Values{"institution": {oaBank}, "firm": {f0}, "role": {"bank"}, "decision": {"deny"}, "reason": {"consent_revoked"}}})
	e.do(oaCall{method: "GET", path: "/v1/audit/events", token: regulator, query: url.Values{"decision": {"maybe"}}, want: 400, noReqCheck: true})
	e.do(oaCall{method: "GET", path: "/v1/audit/stats", token: regulator, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/audit/stats", token: regulator, query: url.Values{"period": {"month"}, "institution": {oaBank}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/audit/stats", token: regulator, query: url.Values{"from": {"2020-01-01"}}, want: 400})
	alerts, _ := e.do(oaCall{method: "GET", path: "/v1/audit/alerts", token: regulator, query: day, want: 200}).json(t)["alerts"].([]any)
	t.Logf("%d audit alerts validated", len(alerts))
	e.do(oaCall{method: "GET", path: "/v1/audit/alerts", token: regulator, want: 200,
		query: url.Values{"rule": {"denial_rate", "access_after_revocation"}, "institution": {oaBank}}})
	if r := e.do(oaCall{method: "GET", path: "/v1/audit/verify", token: regulator, want: 200}); r.json(t)["ok"] != true {
		t.Errorf("verify: %s", r.body)
	}
	e.do(oaCall{method: "GET", path: "/v1/audit/verify", token: regulator, query: url.Values{"chain": {"1"}, "from": {"2"}, "to": {"5"}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/audit/verify", token: regulator, query: url.Values{"chain": {"7"}}, want: 404})
	e.do(oaCall{method: "GET", path: "/v1/audit/export", token: regulator, query: day, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/audit/export", token: regulator, want: 400, noReqCheck: true})
	e.do(oaCall{method: "GET", path: "/v1/access-log", token: ent(f1), want: 200})
	e.do(oaCall{method: "GET", path: "/v1/access-log", token: bank, query: url.Values{"decision": {"deny"}, "limit": {"3"}}, want: 200})
	e.do(oaCall{method: "GET", path: "/v1/access-log", token: bank, query: url.Values{"cursor": {"bogus"}}, want: 400})

	t.Run("roles as documented", func(t *testing.T) { e.sweepRoles(t) })

	// Every documented operation was answered and checked at least once.
	var statuses []string
	for key := range oaDocumented(e.doc) {
		got := e.covered[key]
		if len(got) == 0 {
			t.Errorf("%s was never exercised: add it to TestOpenAPI_ResponsesConform", key)
			continue
		}
		statuses = append(statuses, fmt.Sprintf("%s %v", key, slices.Sorted(maps.Keys(got))))
	}
	sort.Strings(statuses)
	t.Logf("validated responses:\n%s", strings.Join(statuses, "\n"))
}

// sweepRoles calls every operation that admits roles with a token of each
// role: a role x-roles lists passes the role check (whatever the handler
// then says), any other gets 403 role_not_allowed. Each answer is
// validated like any other.
func (e *oaEnv) sweepRoles(t *testing.T) {
	orgOf := map[string]string{"enterprise": e.firms[3].USCC, "bank": "BANK-OA-SWEEP"}
	keys := slices.Sorted(maps.Keys(oaDocumented(e.doc)))
	for _, key := range keys {
		op := oaDocumented(e.doc)[key]
		var roles []string
		for _, r := range op.Extensions["x-roles"].([]any) {
			roles = append(roles, fmt.Sprint(r))
		}
		if len(roles) == 0 {
			continue
		}
		method, path, _ := strings.Cut(key, " ")
		params := map[string]string{}
		for _, name := range []string{"uscc", "id", "source"} {
			if strings.Contains(path, "{"+name+"}") {
				params[name] = map[string]string{"uscc": e.firms[0].USCC, "id": "no-such-id", "source": "tax.vat_return"}[name]
			}
		}
		var query url.Values
		if strings.HasPrefix(path, "/v1/firms/") {
			query = url.Values{"purpose": {"credit_assessment"}}
		}
		for _, role := range firmbridge.Roles {
			org := orgOf[role]
			if org == "" {
				org = "ORG-OA-" + strings.ToUpper(role)
			}
			r := e.do(oaCall{method: method, path: path, params: params, query: query, token: e.token(role, org), noReqCheck: true})
			denied := r.status == http.StatusForbidden && r.code(t) == "role_not_allowed"
			if want := !slices.Contains(roles, role); denied != want {
				t.Errorf("%s as %s: %d %s; the document's x-roles are %v", key, role, r.status, r.code(t), roles)
			}
		}
	}
}
