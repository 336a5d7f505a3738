package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// While no fresh signed digest exists, firm data is refused with 503
// audit_stalled (and the refusal is an access event); once the sealer
// signs again, requests pass the guard.
func TestAuditGuard_FirmDataStopsWhenDigestsStall(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key}
	audit := &memAudit{}
	guard := &api.AuditGuard{Clock: schema.AuditStore{Store: store}, MaxAge: time.Minute, CheckEvery: time.Nanosecond}
	srv := httptest.NewServer((&api.Server{Tokens: tokens, Consents: schema.ConsentStore{Store: store},
		Profiles: schema.ProfileReader{Store: store}, Audit: audit, AuditGuard: guard}).Handler())
	defer srv.Close()
	bank, err := tokens.Issue("u@BANK-G", firmbridge.RoleBank, "BANK-G", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/firms/91350100M000100Y43/profile?purpose=credit_assessment", nil)
		req.Header.Set("Authorization", "Bearer "+bank)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p api.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p.Code
	}
	digest := func(signedAt time.Time) {
		if err := store.Conn().Exec(ctx, fmt.Sprintf(`INSERT INTO audit_digests (chain, number, first_seq, last_seq, last_hash, prev_signature, signed_at, key_id, signature)
			SELECT 0, %d, 1, 0, '', '', toDateTime(%d), 'k', 's'`, signedAt.Unix(), signedAt.Unix())); err != nil {
			t.Fatal(err)
		}
	}

	if status, code := get(); status != http.StatusServiceUnavailable || code != "audit_stalled" {
		t.Fatalf("with no digest: %d %s, want 503 audit_stalled", status, code)
	}
	if n := audit.count(); n != 1 {
		t.Fatalf("%d access events for the refusal, want 1", n)
	}
	digest(time.Now().Add(-5 * time.Minute))
	if status, code := get(); status != http.StatusServiceUnavailable || code != "audit_stalled" {
		t.Fatalf("with a 5-minute-old digest: %d %s, want 503 audit_stalled", status, code)
	}
	digest(time.Now())
	if status, code := get(); status != http.StatusForbidden || code != "consent_required" {
		t.Fatalf("with a fresh digest: %d %s, want the consent check's 403 consent_required", status, code)
	}
}
