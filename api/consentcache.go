package api

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firmbridge/firmbridge"
)

// ConsentCache keeps each firm's consents in memory in front of a
// ConsentStore, so a profile does not wait for a consent query. It is
// only trusted while it is provably fresh: every instance follows
// consent.events.v1 (kafka.ConsentWatch) and drops a firm's entry when an
// event names it, and the watch reports how recent its view is
// (CaughtUp). When the last catch-up is older than Freshness, or the watch
// stops, every read goes to the store: a revocation made on any instance
// is seen here within Freshness, and never later because Kafka is down.
//
// A change made through this cache drops the entry at once, so the
// instance that took it enforces it on the next request. MaxAge bounds an
// entry's life in the one case the events cannot cover: an event that was
// never published (its change answered 503; the sweeper publishes it
// later).
type ConsentCache struct {
	Store     firmbridge.ConsentStore
	Freshness time.Duration // default 1 s
	MaxAge    time.Duration // default DefaultConsentCacheMaxAge
	// MaxFirms bounds memory; when full the cache starts over. Default
	// 200,000 firms.
	MaxFirms int
	Now      func() time.Time

	mu       sync.Mutex
	entries  map[string]consentEntry
	epoch    uint64 // bumped by every invalidation
	caughtUp atomic.Int64
	stats    ConsentCacheStats
}

// DefaultConsentCacheMaxAge is how long a cached firm's consents may be
// served when no event says otherwise.
const DefaultConsentCacheMaxAge = 10 * time.Second

type consentEntry struct {
	consents []*firmbridge.Consent
	loaded   time.Time
}

// ConsentCacheStats counts how reads were served.
type ConsentCacheStats struct {
	Hits, Misses, Bypassed, Invalidations atomic.Int64
}

var _ firmbridge.ConsentStore = (*ConsentCache)(nil)

// Stats returns the cache's counters.
func (c *ConsentCache) Stats() *ConsentCacheStats { return &c.stats }

// Invalidate drops a firm's entry; an event or a local change named it.
func (c *ConsentCache) Invalidate(uscc string) {
	c.mu.Lock()
	delete(c.entries, uscc)
	c.epoch++
	c.mu.Unlock()
	c.stats.Invalidations.Add(1)
}

// CaughtUp records that every consent event acknowledged before asOf has
// been passed to Invalidate.
func (c *ConsentCache) CaughtUp(asOf time.Time) {
	for {
		old := c.caughtUp.Load()
		if asOf.UnixNano() <= old || c.caughtUp.CompareAndSwap(old, asOf.UnixNano()) {
			return
		}
	}
}

func (c *ConsentCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// fresh reports whether the watch caught up recently enough to trust
// cached entries.
func (c *ConsentCache) fresh(now time.Time) bool {
	f := c.Freshness
	if f <= 0 {
		f = time.Second
	}
	return now.Sub(time.Unix(0, c.caughtUp.Load())) <= f
}

// firm returns copies of a firm's consents, from the cache when it may.
func (c *ConsentCache) firm(ctx context.Context, uscc string) ([]*firmbridge.Consent, error) {
	now := c.now()
	if !c.fresh(now) {
		c.stats.Bypassed.Add(1)
		return c.Store.ConsentsForFirm(ctx, uscc)
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultConsentCacheMaxAge
	}
	c.mu.Lock()
	e, ok := c.entries[uscc]
	epoch := c.epoch
	c.mu.Unlock()
	if ok && now.Sub(e.loaded) < maxAge {
		c.stats.Hits.Add(1)
		return cloneConsents(e.consents), nil
	}
	c.stats.Misses.Add(1)
	list, err := c.Store.ConsentsForFirm(ctx, uscc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	// An invalidation while the query ran may concern this firm: keeping
	// what the query saw could undo it.
	if c.epoch == epoch {
		limit := c.MaxFirms
		if limit <= 0 {
			limit = 200_000
		}
		if c.entries == nil || len(c.entries) >= limit {
			c.entries = make(map[string]consentEntry)
		}
		c.entries[uscc] = consentEntry{consents: cloneConsents(list), loaded: now}
	}
	c.mu.Unlock()
	return list, nil
}

// ConsentsForFirm implements firmbridge.ConsentStore.
func (c *ConsentCache) ConsentsForFirm(ctx context.Context, uscc string) ([]*firmbridge.Consent, error) {
	return c.firm(ctx, uscc)
}

// ConsentsForGrantee implements firmbridge.ConsentStore: one firm's from
// the cache, an institution's whole list from the store.
func (c *ConsentCache) ConsentsForGrantee(ctx context.Context, grantee, uscc string) ([]*firmbridge.Consent, error) {
	if uscc == "" {
		return c.Store.ConsentsForGrantee(ctx, grantee, uscc)
	}
	list, err := c.firm(ctx, uscc)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(k *firmbridge.Consent) bool { return k.Grantee != grantee }), nil
}

// Consent implements firmbridge.ConsentStore; by id, always from the
// store, since it is read to change a consent.
func (c *ConsentCache) Consent(ctx context.Context, id string) (*firmbridge.Consent, error) {
	return c.Store.Consent(ctx, id)
}

// SaveConsent implements firmbridge.ConsentStore and drops the firm's
// entry, whether or not the write succeeded: its outcome is unknown.
func (c *ConsentCache) SaveConsent(ctx context.Context, k *firmbridge.Consent) error {
	err := c.Store.SaveConsent(ctx, k)
	c.Invalidate(k.USCC)
	return err
}

// cloneConsents copies consents: callers set their effective status.
func cloneConsents(list []*firmbridge.Consent) []*firmbridge.Consent {
	out := make([]*firmbridge.Consent, len(list))
	for i, k := range list {
		cp := *k
		cp.Scopes = slices.Clone(k.Scopes)
		if k.DataFrom != nil {
			d := *k.DataFrom
			cp.DataFrom = &d
		}
		out[i] = &cp
	}
	return out
}
