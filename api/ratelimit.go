package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// Rate is a token bucket's refill rate and size. A zero PerSecond means
// no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Unlimited reports whether r lets everything through.
func (r Rate) Unlimited() bool { return r.PerSecond <= 0 }

func (r Rate) String() string {
	if r.Unlimited() {
		return "off"
	}
	return strconv.FormatFloat(r.PerSecond, 'f', -1, 64) + "/s:" + strconv.Itoa(r.Burst)
}

// ParseRate reads "N/s", "N/m" or "N/h", optionally followed by ":BURST"
// (default: one second's worth, at least 1), or "off".
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Rate{}, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/m or N/h, optionally :BURST, or off", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Rate{}, fmt.Errorf("rate %q: %q is not a positive number", s, num)
	}
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	if per == 0 {
		return Rate{}, fmt.Errorf("rate %q: unit must be s, m or h", s)
	}
	r := Rate{PerSecond: n / per, Burst: max(1, int(math.Ceil(n/per)))}
	if hasBurst {
		b, err := strconv.Atoi(burstText)
		if err != nil || b < 1 {
			return Rate{}, fmt.Errorf("rate %q: burst %q is not a positive integer", s, burstText)
		}
		r.Burst = b
	}
	return r, nil
}

// RateLimiter keeps one token bucket per institution (org) and role, with
// the role's rate. Full buckets are forgotten, so memory follows the
// institutions active in the last minutes, not all there ever were.
type RateLimiter struct {
	limits map[string]Rate
	now    func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
	rate   Rate
}

// sweepEvery is how often idle buckets are dropped.
const sweepEvery = time.Minute

// NewRateLimiter returns a limiter with a rate per role; a role without
// one is not limited. now may be nil for the wall clock.
func NewRateLimiter(limits map[string]Rate, now func() time.Time) *RateLimiter {
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{limits: limits, now: now, buckets: map[string]*bucket{}}
}

// Allow takes a token from the bucket of (role, org). When none is left it
// says how long until one is.
func (l *RateLimiter) Allow(role, org string) (bool, time.Duration) {
	rate, ok := l.limits[role]
	if !ok || rate.Unlimited() {
		return true, 0
	}
	now := l.now()
	key := role + "\x00" + org
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil || b.rate != rate {
		b = &bucket{tokens: float64(rate.Burst), at: now, rate: rate}
		l.buckets[key] = b
	}
	b.refill(now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate.PerSecond * float64(time.Second))
}

func (b *bucket) refill(now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(b.rate.Burst), b.tokens+elapsed.Seconds()*b.rate.PerSecond)
		b.at = now
	}
}

// sweep drops buckets that have refilled completely: a new one would be
// the same.
func (l *RateLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		b.refill(now)
		if b.tokens >= float64(b.rate.Burst) {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// Len is the number of buckets held, for tests and metrics.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// retryAfter is the Retry-After value for wait: whole seconds, rounded up,
// at least 1.
func retryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// rateLimit runs after authentication: it throttles the caller's
// institution. A refused request is denied like any other, so requests for
// firm data keep their access event.
func (s *Server) rateLimit(c *gin.Context) {
	if s.RateLimits == nil {
		c.Next()
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	ok, wait := s.RateLimits.Allow(id.Role, id.Org)
	if ok {
		c.Next()
		return
	}
	secs := retryAfter(wait)
	c.Header("Retry-After", strconv.Itoa(secs))
	s.deny(c, firmbridge.Errorf(firmbridge.ELIMITED, "rate_limited", "too many requests from %s; retry after %d s", id.Org, secs))
}
