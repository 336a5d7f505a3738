package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/firmbridge/firmbridge/api"
)

// A known path with the wrong method is 405 problem+json naming the
// methods it has, in an Allow header too (RFC 9110 §15.5.6).
func TestServer_MethodNotAllowed(t *testing.T) {
	h := (&api.Server{}).Handler()
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/consents", "GET, POST"},
		{http.MethodPut, "/v1/consents/abc/revoke", "POST"},
		{http.MethodPost, "/healthz", "GET"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != tc.allow ||
			!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") || !strings.Contains(rec.Body.String(), "method_not_allowed") {
			t.Errorf("%s %s: %d Allow %q %s %s, want 405 Allow %q problem+json method_not_allowed",
				tc.method, tc.path, rec.Code, rec.Header().Get("Allow"), rec.Header().Get("Content-Type"), rec.Body, tc.allow)
		}
	}
}

// The client address of an access event is the TCP peer unless the peer
// is a configured proxy: an X-Forwarded-For header cannot forge it.
func TestServer_ClientAddressFromTrustedProxiesOnly(t *testing.T) {
	for _, tc := range []struct {
		proxies []string
		want    string
	}{
		{nil, "192.0.2.7"},
		{[]string{"192.0.2.0/24"}, "198.51.100.9"},
	} {
		audit := &memAudit{}
		h := (&api.Server{Audit: audit, TrustedProxies: tc.proxies}).Handler()
		req := httptest.NewRequest(http.MethodGet, "/v1/access-log", nil)
		req.RemoteAddr = "192.0.2.7:40000"
		req.Header.Set("X-Forwarded-For", "198.51.100.9")
		h.ServeHTTP(httptest.NewRecorder(), req)
		events := audit.snapshot()
		if len(events) != 1 || events[0].ClientAddr != tc.want {
			t.Errorf("proxies %v: events %+v, want one with client address %s", tc.proxies, events, tc.want)
		}
	}
}
