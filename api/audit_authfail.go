package api

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
)

// Failed authentications (a 401 from the bearer-token check) are access
// events too, so a regulator sees who knocked with a bad or expired token.
// They come from callers nobody identified, so they are bounded: at most
// PerAddress events per client address and at most Total in all per
// Window (a fixed window). The rest are counted, not recorded: the
// counter firmbridge_api_auth_failure_events_dropped_total and a warning
// per address and window say how many. The per-address bound keeps one
// noisy client from using up the budget; the total bound holds even when
// the addresses themselves are forged (X-Forwarded-For), so a flood of bad
// tokens adds at most Total events a minute to the audit log.

// Defaults of AuthFailureLimiter.
const (
	DefaultAuthFailuresPerAddress = 10
	DefaultAuthFailuresTotal      = 600
	DefaultAuthFailureWindow      = time.Minute
)

// AuthFailureLimiter bounds the access events of failed authentications.
// Its zero value uses the defaults; a negative limit records none.
type AuthFailureLimiter struct {
	PerAddress int
	Total      int
	Window     time.Duration

	mu          sync.Mutex
	windowStart time.Time
	total       int
	totalWarned bool
	byAddr      map[string]int // holds at most Total addresses per window
	recorded    atomic.Uint64
	dropped     atomic.Uint64
	metricsOnce sync.Once
}

// Recorded and Dropped count the failed authentications that were written
// as access events and those that were not.
func (l *AuthFailureLimiter) Recorded() uint64 { return l.recorded.Load() }

// Dropped: see Recorded.
func (l *AuthFailureLimiter) Dropped() uint64 { return l.dropped.Load() }

// admit reports whether a failure from addr at now may be recorded, and
// whether a warning is due: the first drop of an address, or the first
// drop for the total, in a window.
func (l *AuthFailureLimiter) admit(addr string, now time.Time) (ok, warn bool) {
	perAddr, total, window := l.PerAddress, l.Total, l.Window
	if perAddr == 0 {
		perAddr = DefaultAuthFailuresPerAddress
	}
	if total == 0 {
		total = DefaultAuthFailuresTotal
	}
	if window <= 0 {
		window = DefaultAuthFailureWindow
	}
	if perAddr < 0 || total < 0 {
		return false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr == nil || !now.Before(l.windowStart.Add(window)) || now.Before(l.windowStart) {
		l.windowStart, l.total, l.totalWarned, l.byAddr = now.Truncate(window), 0, false, map[string]int{}
	}
	// Only admitted failures add addresses, so the map holds at most total.
	n := l.byAddr[addr]
	switch {
	case n > perAddr:
		return false, false
	case n == perAddr:
		l.byAddr[addr] = n + 1 // marks the warning as given
		return false, true
	case l.total >= total:
		warn = !l.totalWarned
		l.totalWarned = true
		return false, warn
	}
	l.byAddr[addr] = n + 1
	l.total++
	return true, false
}

// registerMetrics exposes the counters on the server's registry, once.
func (l *AuthFailureLimiter) registerMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	l.metricsOnce.Do(func() {
		for _, c := range []prometheus.Collector{
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "api", Name: "auth_failure_events_total",
				Help: "Failed authentications written to the audit log as access events."}, func() float64 { return float64(l.Recorded()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "api", Name: "auth_failure_events_dropped_total",
				Help: "Failed authentications not written to the audit log because their address or all addresses were over the limit."},
				func() float64 { return float64(l.Dropped()) }),
		} {
			// Another server on the same registry already exposes its own
			// counters under these names; one set is enough.
			if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				return
			}
		}
	})
}

// recordAuthFailure writes the access event of a request refused by
// authenticate, within the limits. The answer is a 401 whatever happens
// here: no data leaves, so a failed audit write is logged, not fatal.
func (s *Server) recordAuthFailure(c *gin.Context, err error) {
	l := &s.AuthFailures
	if s.Registry != nil {
		l.registerMetrics(s.Registry)
	}
	ev := s.newEvent(c)
	ok, warn := l.admit(ev.ClientAddr, s.now())
	if !ok {
		l.dropped.Add(1)
		if warn {
			s.logger().Warn("failed authentications over the audit limit; further ones are counted, not recorded, until the window ends",
				"client_addr", ev.ClientAddr, "request_id", ev.RequestID)
		}
		return
	}
	// No identity was established: subject, role and org stay empty, and
	// nothing the token claims is trusted.
	ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionDeny, firmbridge.ErrorCode(err), http.StatusUnauthorized
	if s.Metrics != nil {
		s.Metrics.Denials.WithLabelValues(ev.Reason).Inc()
	}
	if auditErr := s.Audit.Record(c.Request.Context(), ev); auditErr != nil {
		s.logger().Error("audit log write of a failed authentication failed", "request_id", ev.RequestID, "err", auditErr)
		return
	}
	l.recorded.Add(1)
}
