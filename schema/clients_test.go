package schema_test

import (
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

func TestClientStore_NewestVersionWins(t *testing.T) {
	store := schema.ClientStore{Store: testenv.Store(t)}
	ctx := t.Context()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	c := &schema.Client{ID: "c-1", Name: "loan system", Role: "bank", Org: "BANK-1", SecretHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		CreatedAt: now, CreatedBy: "ops", UpdatedAt: now, UpdatedBy: "ops", Version: 10}
	if err := store.SaveClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	off := *c
	off.Disabled, off.Version, off.UpdatedBy = true, 11, "ops2"
	if err := store.SaveClient(ctx, &off); err != nil {
		t.Fatal(err)
	}
	got, err := store.Client(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Disabled || got.Version != 11 || got.UpdatedBy != "ops2" || got.SecretHash != c.SecretHash || got.Scopes == nil || len(got.Scopes) != 0 {
		t.Errorf("got %+v, want the disabled version 11 with the same hash and no scopes", got)
	}
	if !got.CreatedAt.Equal(now) {
		t.Errorf("created_at %v, want %v", got.CreatedAt, now)
	}
	list, err := store.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Disabled {
		t.Errorf("list %+v, want the one client, disabled", list)
	}
	if _, err := store.Client(ctx, "nope"); firmbridge.ErrorKind(err) != firmbridge.ENOTFOUND {
		t.Errorf("unknown client: %v, want ENOTFOUND", err)
	}
	withScopes := &schema.Client{ID: "c-2", Name: "n", Role: "bank", Org: "BANK-2", Scopes: []string{"profiles", "consents"}, SecretHash: "h",
		CreatedAt: now.Add(time.Second), UpdatedAt: now, Version: 1}
	if err := store.SaveClient(ctx, withScopes); err != nil {
		t.Fatal(err)
	}
	got, err = store.Client(ctx, "c-2")
	if err != nil || len(got.Scopes) != 2 || got.Scopes[1] != "consents" {
		t.Errorf("scopes %v (%v), want [profiles consents]", got.Scopes, err)
	}
}
