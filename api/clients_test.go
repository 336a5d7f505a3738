package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// chClients is the api.ClientStore on the real ClickHouse, as
// cmd/firmbridge wires it.
type chClients struct{ s schema.ClientStore }

func (a chClients) SaveClient(ctx context.Context, c *api.Client) error {
	return a.s.SaveClient(ctx, (*schema.Client)(c))
}

func (a chClients) Client(ctx context.Context, id string) (*api.Client, error) {
	c, err := a.s.Client(ctx, id)
	return (*api.Client)(c), err
}

func (a chClients) Clients(ctx context.Context) ([]*api.Client, error) {
	list, err := a.s.Clients(ctx)
	out := make([]*api.Client, len(list))
	for i, c := range list {
		out[i] = (*api.Client)(c)
	}
	return out, err
}

// lockedBuffer collects the server's log, to check that no secret is in it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	t   *testing.T
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.t.Log(strings.TrimSpace(string(p)))
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type clientsEnv struct {
	store   *schema.Store
	handler http.Handler
	tokens  *api.Tokens
	audit   *memAudit
	log     *lockedBuffer
	admin   string // an operator's admin token, as `firmbridge token` prints
}

func newClientsEnv(t *testing.T, edit func(*api.Server)) *clientsEnv {
	t.Helper()
	store := testenv.Store(t)
	env := &clientsEnv{store: store, audit: &memAudit{}, log: &lockedBuffer{t: t},
		tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t), Leeway: 30 * time.Second}}
	logger := slog.New(slog.NewTextHandler(env.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clients, err := api.NewClients(chClients{schema.ClientStore{Store: store}}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clients.Logger = logger
	srv := &api.Server{Tokens: env.tokens, Clients: clients, Audit: env.audit, Logger: logger,
		Consents: schema.ConsentStore{Store: store}}
	if edit != nil {
		edit(srv)
	}
	env.handler = srv.Handler()
	if env.admin, err = env.tokens.Issue("ops@firmbridge", firmbridge.RoleAdmin, "FIRMBRIDGE-OPS", time.Hour); err != nil {
		t.Fatal(err)
	}
	return env
}

func (e *clientsEnv) do(t *testing.T, method, path, token, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// register creates a client through the admin API.
func (e *clientsEnv) register(t *testing.T, role, org string) api.CreatedClient {
	t.Helper()
	rec := e.do(t, http.MethodPost, "/v1/admin/clients", e.admin, `{"name":"`+role+` system","role":"`+role+`","org":"`+org+`"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("register %s client: status %d, want 201; body %s", role, rec.Code, rec.Body)
	}
	var c api.CreatedClient
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Client == nil || c.ID == "" || c.ClientSecret == "" {
		t.Fatalf("registration answer %s lacks the id or the secret", rec.Body)
	}
	return c
}

// token runs the client credentials grant; it returns the recorder and,
// on success, the access token.
func (e *clientsEnv) token(t *testing.T, id, secret string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	rec := tokenRequest(t, e.handler, url.Values{"grant_type": {"client_credentials"}}, []string{id, secret})
	var resp api.TokenResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
	}
	return rec, resp.AccessToken
}

func TestClients_EndToEnd(t *testing.T) {
	env := newClientsEnv(t, nil)
	ctx := t.Context()
	bank := env.register(t, firmbridge.RoleBank, "BANK-E2E-1")
	if last := lastAccessEvent(env.audit); last.Decision != firmbridge.DecisionAllow || last.Path != "/v1/admin/clients" || last.Role != firmbridge.RoleAdmin {
		t.Errorf("access event of the registration %+v, want an allowed admin event", last)
	}

	t.Run("token, then an API route", func(t *testing.T) {
		rec, tok := env.token(t, bank.ID, bank.ClientSecret)
		if rec.Code != http.StatusOK {
			t.Fatalf("token: status %d; body %s", rec.Code, rec.Body)
		}
		r := env.do(t, http.MethodGet, "/v1/consents", tok, "")
		if r.Code != http.StatusOK || !strings.Contains(r.Body.String(), `"consents"`) {
			t.Fatalf("GET /v1/consents with the client's token: status %d; body %s", r.Code, r.Body)
		}
		if ev := lastAccessEvent(env.audit); ev.Org != "BANK-E2E-1" || ev.Role != firmbridge.RoleBank || ev.Subject != bank.ID {
			t.Errorf("access event %+v, want the bank's org and role, subject the client id", ev)
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		// The last character changed: "A" unless it is "A" already (one
		// secret in 16 ends so, and passed for a wrong one).
		wrong := bank.ClientSecret[:len(bank.ClientSecret)-1] + "A"
		if wrong == bank.ClientSecret {
			wrong = wrong[:len(wrong)-1] + "B"
		}
		rec, _ := env.token(t, bank.ID, wrong)
		if rec.Code != http.StatusUnauthorized || oauthError(t, rec) != "invalid_client" || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("status %d body %s, want 401 invalid_client with a challenge", rec.Code, rec.Body)
		}
	})

	t.Run("secret never stored in clear", func(t *testing.T) {
		var row string
		if err := env.store.Conn().QueryRow(ctx, `SELECT concat(id, name, role, org, arrayStringConcat(scopes, ' '), secret_hash,
			toString(disabled), created_by, updated_by) FROM clients FINAL WHERE id = ?`, bank.ID).Scan(&row); err != nil {
			t.Fatal(err)
		}
		body := strings.TrimPrefix(bank.ClientSecret, "fbcs_")
		if strings.Contains(row, body) {
			t.Fatal("the clients row contains the secret")
		}
		var hash string
		if err := env.store.Conn().QueryRow(ctx, "SELECT secret_hash FROM clients FINAL WHERE id = ?", bank.ID).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$") {
			t.Errorf("secret_hash %q, want an argon2id PHC string", hash)
		}
		if strings.Contains(env.log.String(), body) {
			t.Error("the server's log contains the secret")
		}
	})

	t.Run("listed without secrets", func(t *testing.T) {
		rec := env.do(t, http.MethodGet, "/v1/admin/clients", env.admin, "")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), bank.ID) {
			t.Fatalf("list: status %d; body %s", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "argon2") || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("the list shows secret material: %s", rec.Body)
		}
	})

	t.Run("disabled client", func(t *testing.T) {
		rec := env.do(t, http.MethodPost, "/v1/admin/clients/"+bank.ID+"/disable", env.admin, "")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"disabled":true`) {
			t.Fatalf("disable: status %d; body %s", rec.Code, rec.Body)
		}
		if ev := lastAccessEvent(env.audit); ev.Decision != firmbridge.DecisionAllow || !strings.HasSuffix(ev.Path, "/disable") {
			t.Errorf("access event %+v, want the allowed disable", ev)
		}
		tok, _ := env.token(t, bank.ID, bank.ClientSecret)
		if tok.Code != http.StatusUnauthorized || oauthError(t, tok) != "invalid_client" {
			t.Errorf("token of a disabled client: status %d body %s, want 401 invalid_client", tok.Code, tok.Body)
		}
		if rec := env.do(t, http.MethodPost, "/v1/admin/clients/no-such-client/disable", env.admin, ""); rec.Code != http.StatusNotFound {
			t.Errorf("disable an unknown client: status %d, want 404", rec.Code)
		}
	})
}

func TestClients_AdminRoutesRefusedToOtherRoles(t *testing.T) {
	env := newClientsEnv(t, nil)
	orgs := map[string]string{firmbridge.RoleBank: "BANK-1", firmbridge.RoleEnterprise: "91350100M000100Y43",
		firmbridge.RoleRegulator: "PBOC-FZ", firmbridge.RoleProvider: "PROV-TAX"}
	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/v1/admin/clients", `{"name":"x","role":"admin","org":"EVIL"}`},
		{http.MethodGet, "/v1/admin/clients", ""},
		{http.MethodPost, "/v1/admin/clients/any/disable", ""},
	}
	for role, org := range orgs {
		// Each role gets its token the way institutions do: as a client.
		c := env.register(t, role, org)
		rec, tok := env.token(t, c.ID, c.ClientSecret)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s token: status %d; body %s", role, rec.Code, rec.Body)
		}
		for _, r := range routes {
			before := env.audit.count()
			got := env.do(t, r.method, r.path, tok, r.body)
			if got.Code != http.StatusForbidden {
				t.Errorf("%s %s as %s: status %d, want 403", r.method, r.path, role, got.Code)
				continue
			}
			if p := mustProblemJSON(t, got); p.Code != "role_not_allowed" {
				t.Errorf("%s %s as %s: code %s, want role_not_allowed", r.method, r.path, role, p.Code)
			}
			ev := lastAccessEvent(env.audit)
			if env.audit.count() != before+1 || ev.Decision != firmbridge.DecisionDeny || ev.Role != role || ev.Status != 403 {
				t.Errorf("%s %s as %s: access event %+v (%d new), want one 403 denial", r.method, r.path, role, ev, env.audit.count()-before)
			}
		}
	}
	list, err := schema.ClientStore{Store: env.store}.Clients(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(orgs) {
		t.Errorf("%d clients, want the %d registered by the admin only", len(list), len(orgs))
	}
}

func TestClients_RateLimitAndBodyLimit(t *testing.T) {
	clk := newLimitClock()
	env := newClientsEnv(t, func(s *api.Server) {
		s.RateLimits = api.NewRateLimiter(map[string]api.Rate{firmbridge.RoleBank: {PerSecond: 1, Burst: 2}}, clk.now)
		s.MaxBodyBytes = 4 << 10
	})
	bank := env.register(t, firmbridge.RoleBank, "BANK-RL-1")
	other := env.register(t, firmbridge.RoleBank, "BANK-RL-2")
	_, tok := env.token(t, bank.ID, bank.ClientSecret)
	_, otherTok := env.token(t, other.ID, other.ClientSecret)

	for i := range 2 {
		if rec := env.do(t, http.MethodGet, "/v1/consents", tok, ""); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: status %d; body %s", i+1, rec.Code, rec.Body)
		}
	}
	before := env.audit.count()
	rec := env.do(t, http.MethodGet, "/v1/consents", tok, "")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: status %d Retry-After %q, want 429 and 1; body %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if p := mustProblemJSON(t, rec); p.Code != "rate_limited" {
		t.Errorf("code %s, want rate_limited", p.Code)
	}
	if ev := lastAccessEvent(env.audit); env.audit.count() != before+1 || ev.Reason != "rate_limited" || ev.Org != "BANK-RL-1" {
		t.Errorf("access event %+v, want the rate_limited denial of BANK-RL-1", ev)
	}
	if rec := env.do(t, http.MethodGet, "/v1/consents", otherTok, ""); rec.Code != http.StatusOK {
		t.Errorf("another bank: status %d, want 200 (its own bucket)", rec.Code)
	}
	clk.advance(time.Second)
	if rec := env.do(t, http.MethodGet, "/v1/consents", tok, ""); rec.Code != http.StatusOK {
		t.Errorf("after Retry-After: status %d, want 200; body %s", rec.Code, rec.Body)
	}

	big := `{"name":"` + strings.Repeat("n", 5000) + `","role":"bank","org":"BANK-X"}`
	if rec := env.do(t, http.MethodPost, "/v1/admin/clients", env.admin, big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize body: status %d, want 413; body %s", rec.Code, rec.Body)
	} else if p := mustProblemJSON(t, rec); p.Code != "body_too_large" {
		t.Errorf("oversize body: code %s, want body_too_large", p.Code)
	}
}
