package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

// limitClock is a settable time for tests.
type limitClock struct{ t time.Time }

func (c *limitClock) now() time.Time          { return c.t }
func (c *limitClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimitClock() *limitClock {
	return &limitClock{t: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]api.Rate{
		"100/s":     {PerSecond: 100, Burst: 100},
		"100/s:250": {PerSecond: 100, Burst: 250},
		"60/m":      {PerSecond: 1, Burst: 1},
		"30/m":      {PerSecond: 0.5, Burst: 1},
		"7200/h:10": {PerSecond: 2, Burst: 10},
		"off":       {},
		"0":         {},
	} {
		got, err := api.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "100", "100/d", "-1/s", "x/s", "10/s:0", "10/s:x", "NaN/s", "Inf/s"} {
		if _, err := api.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestRateLimiter_Bucket(t *testing.T) {
	clk := newLimitClock()
	l := api.NewRateLimiter(map[string]api.Rate{"bank": {PerSecond: 2, Burst: 3}}, clk.now)
	for i := range 3 {
		if ok, _ := l.Allow("bank", "BANK-1"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("bank", "BANK-1")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: ok %v wait %v, want refused with 500ms", ok, wait)
	}
	t.Run("other institutions have their own bucket", func(t *testing.T) {
		if ok, _ := l.Allow("bank", "BANK-2"); !ok {
			t.Error("BANK-2 refused because of BANK-1")
		}
	})
	t.Run("roles without a limit pass", func(t *testing.T) {
		for range 100 {
			if ok, _ := l.Allow("regulator", "BANK-1"); !ok {
				t.Fatal("regulator refused")
			}
		}
	})
	t.Run("a refused request takes nothing", func(t *testing.T) {
		clk.advance(250 * time.Millisecond)
		if ok, wait := l.Allow("bank", "BANK-1"); ok || wait != 250*time.Millisecond {
			t.Errorf("ok %v wait %v, want refused with 250ms", ok, wait)
		}
		clk.advance(250 * time.Millisecond)
		if ok, _ := l.Allow("bank", "BANK-1"); !ok {
			t.Error("refused after the refill")
		}
	})
	t.Run("refill stops at the burst", func(t *testing.T) {
		clk.advance(time.Hour)
		n := 0
		for {
			if ok, _ := l.Allow("bank", "BANK-1"); !ok {
				break
			}
			n++
		}
		if n != 3 {
			t.Errorf("%d requests after an idle hour, want the burst of 3", n)
		}
	})
	t.Run("idle buckets are forgotten", func(t *testing.T) {
		clk.advance(2 * time.Minute)
		_, _ = l.Allow("bank", "BANK-3")
		if n := l.Len(); n != 1 {
			t.Errorf("%d buckets after the sweep, want only BANK-3's", n)
		}
	})
}

func TestRateLimit_429WithRetryAfterAndAccessEvent(t *testing.T) {
	clk := newLimitClock()
	env := newAuthEnv(t, &memClients{}, func(s *api.Server) {
		s.RateLimits = api.NewRateLimiter(map[string]api.Rate{"bank": {PerSecond: 0.4, Burst: 1}}, clk.now)
	})
	bank, err := env.tokens.Issue("robot", "bank", "BANK-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+bank)
		rec := httptest.NewRecorder()
		env.handler.ServeHTTP(rec, req)
		return rec
	}
	// The burst of 1 goes on a request the role matrix refuses: the limit
	// runs before it.
	if rec := get("/v1/admin/clients"); rec.Code != http.StatusForbidden {
		t.Fatalf("first request: status %d, want 403; body %s", rec.Code, rec.Body)
	}
	before := env.audit.count()
	rec := get("/v1/firms/91350100M000100Y43/profile?purpose=credit_assessment")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429; body %s", rec.Code, rec.Body)
	}
	// 1 token at 0.4/s is 2.5 s away: Retry-After rounds up to 3.
	if got := rec.Header().Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q, want 3", got)
	}
	if p := mustProblemJSON(t, rec); p.Code != "rate_limited" || p.Status != 429 || p.RequestID == "" {
		t.Errorf("problem %+v, want code rate_limited, status 429 and a request id", p)
	}
	if n := env.audit.count() - before; n != 1 {
		t.Fatalf("%d access events for the refused request, want 1", n)
	}
	ev := lastAccessEvent(env.audit)
	if ev.Decision != firmbridge.DecisionDeny || ev.Reason != "rate_limited" || ev.Status != 429 || ev.USCC != "91350100M000100Y43" || ev.Purpose != "credit_assessment" {
		t.Errorf("access event %+v, want a 429 rate_limited denial naming the firm and purpose", ev)
	}
	clk.advance(2 * time.Second)
	if rec := get("/v1/admin/clients"); rec.Code != http.StatusTooManyRequests {
		t.Errorf("status %d before Retry-After passed, want 429", rec.Code)
	}
	clk.advance(time.Second)
	if rec := get("/v1/admin/clients"); rec.Code != http.StatusForbidden {
		t.Errorf("status %d after Retry-After, want the route's own 403; body %s", rec.Code, rec.Body)
	}
}
