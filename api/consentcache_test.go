package api_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// countingStore counts the firm reads that reach ClickHouse and can run a
// hook in the middle of one.
type countingStore struct {
	schema.ConsentStore
	reads  atomic.Int64
	during func()
}

func (s *countingStore) ConsentsForFirm(ctx context.Context, uscc string) ([]*firmbridge.Consent, error) {
	s.reads.Add(1)
	list, err := s.ConsentStore.ConsentsForFirm(ctx, uscc)
	if s.during != nil {
		s.during()
	}
	return list, err
}

func TestConsentCache(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{ConsentStore: schema.ConsentStore{Store: testenv.Store(t)}}
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	clock := now
	cache := &api.ConsentCache{Store: store, Now: func() time.Time { return clock }}
	const firm, bank = "91350100M000100Y43", "BANK-CACHE-001"
	grant := &firmbridge.Consent{ID: "c-cache-1", USCC: firm, Grantee: bank, Scopes: []string{firmbridge.ScopeTax},
		Purpose: firmbridge.PurposeCreditAssessment, Status: firmbridge.ConsentActive, ValidFrom: now.Add(-time.Hour),
		ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour)}
	if err := cache.SaveConsent(ctx, grant); err != nil {
		t.Fatal(err)
	}
	read := func() []*firmbridge.Consent {
		t.Helper()
		list, err := cache.ConsentsForGrantee(ctx, bank, firm)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}

	t.Run("until the watch has caught up, every read goes to the store", func(t *testing.T) {
		before := store.reads.Load()
		read()
		read()
		if got := store.reads.Load() - before; got != 2 {
			t.Errorf("%d store reads, want 2", got)
		}
	})

	cache.CaughtUp(clock)
	t.Run("caught up: the second read is served from memory, as a copy", func(t *testing.T) {
		before := store.reads.Load()
		first := read()
		if len(first) != 1 || first[0].Status != firmbridge.ConsentActive {
			t.Fatalf("read %+v, want the active consent", first)
		}
		first[0].Status = "CHANGED BY CALLER"
		second := read()
		if got := store.reads.Load() - before; got != 1 {
			t.Errorf("%d store reads, want 1", got)
		}
		if second[0].Status != firmbridge.ConsentActive {
			t.Errorf("a caller's change leaked into the cache: %q", second[0].Status)
		}
		if other, _ := cache.ConsentsForGrantee(ctx, "ANOTHER-BANK", firm); len(other) != 0 {
			t.Errorf("another bank sees %d consents, want 0", len(other))
		}
	})

	t.Run("a change through the cache is seen on the next read", func(t *testing.T) {
		revoked := *grant
		revoked.Status, revoked.UpdatedAt = firmbridge.ConsentRevoked, now
		if err := cache.SaveConsent(ctx, &revoked); err != nil {
			t.Fatal(err)
		}
		if got := read(); len(got) != 1 || got[0].Status != firmbridge.ConsentRevoked {
			t.Fatalf("after revocation read %+v, want REVOKED", got)
		}
	})

	t.Run("an event for the firm drops its entry", func(t *testing.T) {
		read()
		before := store.reads.Load()
		cache.Invalidate(firm)
		read()
		if got := store.reads.Load() - before; got != 1 {
			t.Errorf("%d store reads after an invalidation, want 1", got)
		}
	})

	t.Run("an invalidation during a load keeps the load out of the cache", func(t *testing.T) {
		cache.Invalidate(firm)
		store.during = func() { cache.Invalidate(firm) }
		read()
		store.during = nil
		before := store.reads.Load()
		read()
		if got := store.reads.Load() - before; got != 1 {
			t.Errorf("%d store reads, want 1: a load raced by an invalidation was cached", got)
		}
	})

	t.Run("when the watch falls behind, reads go to the store", func(t *testing.T) {
		read()
		clock = clock.Add(1500 * time.Millisecond)
		before := store.reads.Load()
		read()
		read()
		if got := store.reads.Load() - before; got != 2 {
			t.Errorf("%d store reads with a stale watch, want 2", got)
		}
		if cache.Stats().Bypassed.Load() == 0 {
			t.Error("no bypass counted")
		}
	})

	t.Run("entries live at most MaxAge", func(t *testing.T) {
		cache.CaughtUp(clock)
		read()
		clock = clock.Add(api.DefaultConsentCacheMaxAge)
		cache.CaughtUp(clock)
		before := store.reads.Load()
		read()
		if got := store.reads.Load() - before; got != 1 {
			t.Errorf("%d store reads after MaxAge, want 1", got)
		}
	})
}
