package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

func TestMigrations_OrderedAndNamed(t *testing.T) {
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d has version %d, want %d (no gaps)", i, m.Version, i+1)
		}
		if len(m.Statements) == 0 {
			t.Errorf("migration %04d_%s has no statements", m.Version, m.Name)
		}
	}
}

func TestStore_Migrate(t *testing.T) {
	store := testenv.Store(t) // migrated once already
	ctx := context.Background()

	t.Run("re-run applies nothing", func(t *testing.T) {
		ran, err := store.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ran) != 0 {
			t.Errorf("second Migrate applied %v, want nothing", ran)
		}
	})
	t.Run("every migration recorded once", func(t *testing.T) {
		ms, _ := schema.Migrations()
		applied, err := store.AppliedMigrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != len(ms) {
			t.Fatalf("recorded %d migrations, want %d", len(applied), len(ms))
		}
		for i := range ms {
			if applied[i].Version != ms[i].Version || applied[i].Checksum != ms[i].Checksum {
				t.Errorf("recorded %+v, want version %d checksum %s", applied[i], ms[i].Version, ms[i].Checksum)
			}
		}
	})
	t.Run("canonical tables exist", func(t *testing.T) {
		for _, table := range []string{"firms", "consents", "access_events", "tax_vat_returns"} {
			var n uint64
			if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", store.Database(), table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("table %s missing after migrate", table)
			}
		}
	})
	t.Run("a changed migration is refused", func(t *testing.T) {
		if err := store.Conn().Exec(ctx, "ALTER TABLE schema_migrations UPDATE checksum = 'tampered' WHERE version = 1"); err != nil {
			t.Fatal(err)
		}
		// ALTER ... UPDATE is asynchronous; wait for the mutation.
		deadline := time.Now().Add(20 * time.Second)
		for {
			applied, err := store.AppliedMigrations(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if applied[0].Checksum == "tampered" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := store.Migrate(ctx); err == nil {
			t.Error("Migrate accepted a migration whose recorded checksum differs")
		}
	})
}

func TestConsentStore_NewestVersionWins(t *testing.T) {
	store := testenv.Store(t)
	ctx := context.Background()
	cs := schema.ConsentStore{Store: store}
	now := time.Now().UTC().Truncate(time.Second)
	c := &firmbridge.Consent{ID: "c-1", USCC: "91350100M000100Y43", Grantee: "BANK-1", Scopes: []string{"tax"},
		Purpose: firmbridge.PurposeCreditAssessment, Status: firmbridge.ConsentActive, ValidFrom: now,
		ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, UpdatedAt: now, UpdatedBy: "u", Version: 10}
	if err := cs.SaveConsent(ctx, c); err != nil {
		t.Fatal(err)
	}
	revoked := *c
	revoked.Status, revoked.Version = firmbridge.ConsentRevoked, 11
	if err := cs.SaveConsent(ctx, &revoked); err != nil {
		t.Fatal(err)
	}
	got, err := cs.Consent(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != firmbridge.ConsentRevoked || got.Version != 11 {
		t.Errorf("got status %s version %d, want REVOKED 11", got.Status, got.Version)
	}
	list, err := cs.ConsentsForGrantee(ctx, "BANK-1", "91350100M000100Y43")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Status != firmbridge.ConsentRevoked {
		t.Errorf("ConsentsForGrantee = %+v, want one revoked consent", list)
	}
	if _, err := cs.Consent(ctx, "missing"); firmbridge.ErrorKind(err) != firmbridge.ENOTFOUND {
		t.Errorf("missing consent: err %v, want ENOTFOUND", err)
	}
}
