package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/firmbridge/firmbridge"
)

// DefaultDigestCheckEvery is how long AuditGuard reuses one answer from the store.
const DefaultDigestCheckEvery = time.Second

// AuditGuard fails closed when the audit log stops being sealed, as X-Road
// refuses service when it cannot log: while the newest signed digest of any
// audit chain is older than MaxAge (or there is none, or the store does not
// answer), firm data must not be served. The store is asked at most once
// per CheckEvery; the age is measured at each call, so a stall shows even
// between two questions.
type AuditGuard struct {
	Clock      firmbridge.AuditDigestClock
	MaxAge     time.Duration
	CheckEvery time.Duration    // default DefaultDigestCheckEvery
	Timeout    time.Duration    // bound on one question to the store; default 2s
	Now        func() time.Time // default time.Now

	mu        sync.Mutex
	checkedAt time.Time
	stalest   time.Time
	found     bool
	err       error
}

// Stale reports whether the newest digest is older than MaxAge (or cannot
// be known), in which case firm data must not be served.
func (g *AuditGuard) Stale(ctx context.Context) bool { return g.Check(ctx) != nil }

// Check returns nil while the digests are fresh, and otherwise an
// EUNAVAILABLE error (code audit_stalled) whose message is safe to show.
func (g *AuditGuard) Check(ctx context.Context) error {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	every := g.CheckEvery
	if every <= 0 {
		every = DefaultDigestCheckEvery
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Callers wait for one question rather than asking in parallel; the
	// timeout bounds that wait.
	if g.checkedAt.IsZero() || now().Sub(g.checkedAt) >= every {
		timeout := g.Timeout
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		g.stalest, g.found, g.err = g.Clock.StalestDigestAt(qctx)
		cancel()
		g.checkedAt = now()
	}
	stalled := func(format string, args ...any) error {
		return firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_stalled", "the access log is not being sealed, so no data is served; retry later (%s)", fmt.Sprintf(format, args...))
	}
	switch {
	case g.err != nil:
		return fmt.Errorf("%w: %w", stalled("digest state unknown"), g.err)
	case !g.found:
		return stalled("no signed digest yet")
	case now().Sub(g.stalest) > g.MaxAge:
		return stalled("newest digest of a chain is %s old", now().Sub(g.stalest).Truncate(time.Second))
	}
	return nil
}
