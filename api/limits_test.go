package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

func TestLimitBody_413(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, func(s *api.Server) { s.MaxBodyBytes = 256 })
	admin, err := env.tokens.Issue("ops", "admin", "FIRMBRIDGE-OPS", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	small := `{"name":"loan system","role":"bank","org":"BANK-1"}`
	big := `{"name":"` + strings.Repeat("x", 300) + `","role":"bank","org":"BANK-1"}`
	post := func(body io.Reader, length int64) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/admin/clients", body)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin)
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(strings.NewReader(small), int64(len(small))); rec.Code != http.StatusCreated {
		t.Fatalf("small body: status %d, want 201; body %s", rec.Code, rec.Body)
	}
	for name, rec := range map[string]func() *httptest.ResponseRecorder{
		"declared length": func() *httptest.ResponseRecorder { return post(strings.NewReader(big), int64(len(big))) },
		// No Content-Length (chunked): the limit holds while reading.
		"unknown length": func() *httptest.ResponseRecorder { return post(io.MultiReader(strings.NewReader(big)), -1) },
	} {
		t.Run(name, func(t *testing.T) {
			before := env.audit.count()
			r := rec()
			if r.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413; body %s", r.Code, r.Body)
			}
			if p := mustProblemJSON(t, r); p.Code != "body_too_large" {
				t.Errorf("code %q, want body_too_large", p.Code)
			}
			if env.audit.count() != before+1 || lastAccessEvent(env.audit).Status != 413 {
				t.Errorf("want one access event with status 413, got %d events, last %+v", env.audit.count()-before, lastAccessEvent(env.audit))
			}
		})
	}
	list, _ := env.clients.List(t.Context())
	if len(list) != 1 {
		t.Errorf("%d clients registered, want only the small one", len(list))
	}
}

// TestProblems_CarryRequestID: every problem+json body names the request,
// whether the router, the authentication or a handler wrote it.
func TestProblems_CarryRequestID(t *testing.T) {
	env := newAuthEnv(t, &memClients{}, nil)
	bank, err := env.tokens.Issue("robot", firmbridge.RoleBank, "BANK-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, token, requestID string
		status                         int
	}{
		{http.MethodGet, "/nowhere", "", "", 404},
		{http.MethodDelete, "/healthz", "", "", 405}, // method_not_allowed
		{http.MethodGet, "/v1/admin/clients", "", "given-by-the-caller", 401},
		{http.MethodGet, "/v1/admin/clients", bank, "", 403},
		{http.MethodPost, "/v1/admin/clients/x/disable", bank, "", 403},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.requestID != "" {
			req.Header.Set("X-Request-ID", tc.requestID)
		}
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, rec.Code, tc.status)
			continue
		}
		p := mustProblemJSON(t, rec)
		if tc.requestID != "" && p.RequestID != tc.requestID {
			t.Errorf("%s %s: request_id %q, want the caller's %q", tc.method, tc.path, p.RequestID, tc.requestID)
		}
	}
}
