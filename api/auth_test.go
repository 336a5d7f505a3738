package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

// memClients is an api.ClientStore in memory.
type memClients struct {
	mu      sync.Mutex
	clients map[string]api.Client
}

func (m *memClients) SaveClient(_ context.Context, c *api.Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clients == nil {
		m.clients = map[string]api.Client{}
	}
	if old, ok := m.clients[c.ID]; !ok || c.Version > old.Version {
		m.clients[c.ID] = *c
	}
	return nil
}

func (m *memClients) Client(_ context.Context, id string) (*api.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.clients[id]
	if !ok {
		return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "client_not_found", "no client with id %s", id)
	}
	return &c, nil
}

func (m *memClients) Clients(context.Context) ([]*api.Client, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*api.Client
	for _, c := range m.clients {
		out = append(out, &c)
	}
	return out, nil
}

type authEnv struct {
	handler http.Handler
	tokens  *api.Tokens
	clients *api.Clients
	audit   *memAudit
	reg     *prometheus.Registry
}

// newAuthEnv builds a server with clients kept in store.
func newAuthEnv(t *testing.T, store api.ClientStore, edit func(*api.Server)) *authEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	clients, err := api.NewClients(store, reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testLog{t}, nil))
	clients.Logger = logger
	env := &authEnv{
		tokens:  &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t)},
		clients: clients, audit: &memAudit{}, reg: reg,
	}
	srv := &api.Server{Tokens: env.tokens, Clients: clients, Audit: env.audit, Logger: logger}
	if edit != nil {
		edit(srv)
	}
	env.handler = srv.Handler()
	return env
}

// mustProblemJSON decodes a problem+json answer.
func mustProblemJSON(t *testing.T, rec *httptest.ResponseRecorder) api.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem: %v; body %s", err, rec.Body)
	}
	if p.RequestID == "" || p.RequestID != rec.Header().Get("X-Request-ID") {
		t.Errorf("problem request_id %q, want the X-Request-ID %q", p.RequestID, rec.Header().Get("X-Request-ID"))
	}
	return p
}

// counterValue reads one labelled counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// lastAccessEvent is the newest event a memAudit holds.
func lastAccessEvent(a *memAudit) firmbridge.AccessEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.events) == 0 {
		return firmbridge.AccessEvent{}
	}
	return *a.events[len(a.events)-1]
}

func MustCreateClient(t *testing.T, clients *api.Clients, req api.CreateClientRequest) *api.CreatedClient {
	t.Helper()
	c, err := clients.Create(context.Background(), "tester", req)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return c
}

// tokenRequest posts form to /v1/auth/token; basic, when set, is
// "id:secret" sent as HTTP Basic.
func tokenRequest(t *testing.T, h http.Handler, form url.Values, basic []string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func oauthError(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("decode OAuth2 error: %v; body %s", err, rec.Body)
	}
	return body.Error
}

func TestTokenEndpoint_ClientCredentials(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, nil)
	created := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "loan system", Role: "bank", Org: "BANK-1", Scopes: []string{"tax"}})
	if !strings.HasPrefix(created.ClientSecret, "fbcs_") || len(created.ClientSecret) < 40 {
		t.Fatalf("secret %q: want fbcs_ and 32 random bytes", created.ClientSecret)
	}
	for name, send := range map[string]func() *httptest.ResponseRecorder{
		"basic": func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}}, []string{created.ID, created.ClientSecret})
		},
		"form fields": func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "client_id": {created.ID}, "client_secret": {created.ClientSecret}}, nil)
		},
		"basic with a scope": func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "scope": {"tax"}}, []string{created.ID, created.ClientSecret})
		},
	} {
		t.Run(name, func(t *testing.T) {
			rec := send()
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
			}
			if rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
			}
			var resp api.TokenResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != 3600 || resp.Scope != "tax" {
				t.Errorf("response %+v, want Bearer, 3600 s, scope profiles", resp)
			}
			id, err := env.tokens.Parse(resp.AccessToken)
			if err != nil {
				t.Fatalf("issued token does not verify: %v", err)
			}
			if id.Role != "bank" || id.Org != "BANK-1" || id.Subject != created.ID {
				t.Errorf("identity %+v, want bank BANK-1 subject %s", id, created.ID)
			}
		})
	}
}

func TestTokenEndpoint_EnterpriseTokenCarriesUSCC(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, nil)
	created := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "erp", Role: "enterprise", Org: "91350100m000100y43"})
	if created.Org != "91350100M000100Y43" {
		t.Errorf("org %q, want the normalized USCC", created.Org)
	}
	rec := tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}}, []string{created.ID, created.ClientSecret})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d; body %s", rec.Code, rec.Body)
	}
	var resp api.TokenResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	var claims api.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(resp.AccessToken, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Role != "enterprise" || claims.Org != "91350100M000100Y43" || claims.USCC != claims.Org || claims.ClientID != created.ID {
		t.Errorf("claims %+v, want enterprise with org = uscc = the firm and client_id", claims)
	}
}

func TestTokenEndpoint_Errors(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, nil)
	good := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "a", Role: "bank", Org: "BANK-1", Scopes: []string{"tax"}})
	off := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "b", Role: "bank", Org: "BANK-2"})
	if _, err := env.clients.Disable(context.Background(), "tester", off.ID); err != nil {
		t.Fatal(err)
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	raw := func(contentType, target, body string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, req)
		return rec
	}
	cases := []struct {
		name   string
		rec    func() *httptest.ResponseRecorder
		status int
		code   string
	}{
		{"wrong secret", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, cc, []string{good.ID, good.ClientSecret + "x"})
		}, 401, "invalid_client"},
		{"unknown client", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, cc, []string{"no-such-client", good.ClientSecret})
		}, 401, "invalid_client"},
		{"disabled client", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, cc, []string{off.ID, off.ClientSecret})
		}, 401, "invalid_client"},
		{"no credentials", func() *httptest.ResponseRecorder { return tokenRequest(t, env.handler, cc, nil) }, 401, "invalid_client"},
		{"client id without secret", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "client_id": {good.ID}}, nil)
		}, 401, "invalid_client"},
		{"bearer instead of basic", func() *httptest.ResponseRecorder {
			return raw("application/x-www-form-urlencoded", "/v1/auth/token", cc.Encode(), map[string]string{"Authorization": "Bearer x"})
		}, 401, "invalid_client"},
		{"malformed basic", func() *httptest.ResponseRecorder {
			return raw("application/x-www-form-urlencoded", "/v1/auth/token", cc.Encode(), map[string]string{"Authorization": "Basic !!!"})
		}, 401, "invalid_client"},
		{"two authentication methods", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "client_secret": {good.ClientSecret}}, []string{good.ID, good.ClientSecret})
		}, 400, "invalid_request"},
		{"missing grant_type", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{}, []string{good.ID, good.ClientSecret})
		}, 400, "invalid_request"},
		{"password grant", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}, []string{good.ID, good.ClientSecret})
		}, 400, "unsupported_grant_type"},
		{"repeated parameter", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials", "client_credentials"}}, []string{good.ID, good.ClientSecret})
		}, 400, "invalid_request"},
		{"JSON body", func() *httptest.ResponseRecorder {
			return raw("application/json", "/v1/auth/token", `{"grant_type":"client_credentials"}`, nil)
		}, 400, "invalid_request"},
		{"secret in the query string", func() *httptest.ResponseRecorder {
			return raw("application/x-www-form-urlencoded", "/v1/auth/token?client_id="+good.ID+"&client_secret="+good.ClientSecret, cc.Encode(), nil)
		}, 400, "invalid_request"},
		{"oversize body", func() *httptest.ResponseRecorder {
			return raw("application/x-www-form-urlencoded", "/v1/auth/token", cc.Encode()+"&pad="+strings.Repeat("a", 10000), nil)
		}, 400, "invalid_request"},
		{"unregistered scope", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, []string{good.ID, good.ClientSecret})
		}, 400, "invalid_scope"},
		{"malformed scope", func() *httptest.ResponseRecorder {
			return tokenRequest(t, env.handler, url.Values{"grant_type": {"client_credentials"}, "scope": {`a"b`}}, []string{good.ID, good.ClientSecret})
		}, 400, "invalid_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := oauthError(t, rec); got != tc.code {
				t.Errorf("error %q, want %q", got, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate %q, want a Basic challenge", rec.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(rec.Body.String(), good.ClientSecret) {
				t.Error("the response echoes the secret")
			}
		})
	}
}

func TestTokenEndpoint_FailuresLookAlikeAndAreCounted(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, nil)
	good := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "a", Role: "bank", Org: "BANK-1"})
	off := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "b", Role: "bank", Org: "BANK-2"})
	if _, err := env.clients.Disable(context.Background(), "tester", off.ID); err != nil {
		t.Fatal(err)
	}
	cc := url.Values{"grant_type": {"client_credentials"}}
	bodies := map[string]string{}
	for name, cred := range map[string][]string{
		"unknown_client": {"no-such-client", "fbcs_whatever"},
		"bad_secret":     {good.ID, "fbcs_whatever"},
		"disabled":       {off.ID, off.ClientSecret},
	} {
		rec := tokenRequest(t, env.handler, cc, cred)
		bodies[name] = rec.Body.String()
		if got := counterValue(t, env.reg, "firmbridge_api_client_auth_failures_total", "reason", name); got != 1 {
			t.Errorf("failures{reason=%s} = %v, want 1", name, got)
		}
	}
	if bodies["unknown_client"] != bodies["bad_secret"] || bodies["bad_secret"] != bodies["disabled"] {
		t.Errorf("failure bodies differ, so they tell which case happened: %v", bodies)
	}
}

func TestClients_CreateValidates(t *testing.T) {
	clients, err := api.NewClients(&memClients{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]api.CreateClientRequest{
		"no name":              {Role: "bank", Org: "BANK-1"},
		"unknown role":         {Name: "x", Role: "root", Org: "BANK-1"},
		"no org":               {Name: "x", Role: "bank"},
		"org with spaces":      {Name: "x", Role: "bank", Org: "BANK 1"},
		"enterprise not USCC":  {Name: "x", Role: "enterprise", Org: "BANK-1"},
		"scope with a space":   {Name: "x", Role: "bank", Org: "BANK-1", Scopes: []string{"a b"}},
		"scope with a quote":   {Name: "x", Role: "bank", Org: "BANK-1", Scopes: []string{`a"`}},
		"enterprise bad check": {Name: "x", Role: "enterprise", Org: "91350100M000100Y44"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := clients.Create(context.Background(), "tester", req)
			if got := firmbridge.ErrorKind(err); got != firmbridge.EINVALID {
				t.Errorf("kind %s (%v), want %s", got, err, firmbridge.EINVALID)
			}
		})
	}
}

func TestTokenEndpoint_TTLAndBasicEncoding(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, func(s *api.Server) { s.TokenTTL = 10 * time.Minute })
	created := MustCreateClient(t, env.clients, api.CreateClientRequest{Name: "a", Role: "regulator", Org: "PBOC"})
	// RFC 6749 §2.3.1: the id and secret are form-encoded inside Basic.
	req := httptest.NewRequest(http.MethodPost, "/v1/auth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(created.ID)+":"+url.QueryEscape(created.ClientSecret))))
	rec := httptest.NewRecorder()
	env.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d; body %s", rec.Code, rec.Body)
	}
	var resp api.TokenResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	if resp.ExpiresIn != 600 || resp.Scope != "" {
		t.Errorf("response %+v, want expires_in 600 and no scope", resp)
	}
}

// BenchmarkClients_Authenticate is the cost argon2id adds to each
// /v1/auth/token call; bearer-token verification (BenchmarkTokens_Parse)
// never pays it.
func BenchmarkClients_Authenticate(b *testing.B) {
	clients, err := api.NewClients(&memClients{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := clients.Create(context.Background(), "bench", api.CreateClientRequest{Name: "a", Role: "bank", Org: "BANK-1"})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := clients.Authenticate(context.Background(), c.ID, c.ClientSecret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokens_Parse(b *testing.B) {
	k, err := api.GenerateSigningKey()
	if err != nil {
		b.Fatal(err)
	}
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: k}
	raw, err := tokens.Issue("s", "bank", "BANK-1", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tokens.Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
