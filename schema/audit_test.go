package schema_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

func auditTestEvent(i int) *firmbridge.AccessEvent {
	decision, status, reason := firmbridge.DecisionAllow, 200, ""
	if i%4 == 0 {
		decision, status, reason = firmbridge.DecisionDeny, 403, "consent_required"
	}
	return &firmbridge.AccessEvent{EventID: fmt.Sprintf("ev-%d", i), RequestID: fmt.Sprintf("rq-%d", i),
		OccurredAt: time.Date(2025, 1, 31, 23, 59, 0, 987654321, time.UTC).Add(time.Duration(i) * time.Second), // spans two months
		Subject:    "a@BANK-1", Role: "bank", Org: fmt.Sprintf("BANK-%d", i%3), USCC: "91350100M000100Y43", Scopes: []string{"tax"},
		Purpose: "credit_assessment", Decision: decision, Reason: reason, Status: status, ClientAddr: "127.0.0.1", Method: "GET", Path: "/v1/x"}
}

func TestAuditStore_SealVerifyExport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := testenv.Store(t)
	audit := schema.AuditStore{Store: store}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := firmbridge.AuditKeys{"k": pub}

	st, d, err := audit.ChainHead(ctx, 7)
	if err != nil || d != nil || st.LastSeq != 0 || st.NextOffset != -1 {
		t.Fatalf("empty chain head: %+v %v %v, want a new state and no digest", st, d, err)
	}
	state := firmbridge.NewChainState(7)
	var digest *firmbridge.AuditDigest
	var batches [][]firmbridge.SealedEvent
	for b := range 4 {
		var batch []firmbridge.SealedEvent
		for i := b * 25; i < (b+1)*25; i++ {
			ev, err := state.Seal(auditTestEvent(i), int64(1000+i))
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, ev)
		}
		if err := audit.AppendSealed(ctx, state, batch); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, batch)
		next := firmbridge.NextAuditDigest(digest, state, time.Now())
		next.Sign(priv, "k")
		// Written twice, as a retried write would: it must count once.
		for range 2 {
			if err := audit.WriteDigest(ctx, &next); err != nil {
				t.Fatal(err)
			}
		}
		digest = &next
	}

	t.Run("chain head", func(t *testing.T) {
		st, d, err := audit.ChainHead(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastSeq != 100 || st.LastHash != state.LastHash || st.NextOffset != 1100 {
			t.Errorf("state %+v, want seq 100, offset 1100 and the last hash", st)
		}
		if d == nil || d.Number != 4 || !bytes.Equal(d.Signature, digest.Signature) || !d.SignedAt.Equal(digest.SignedAt) {
			t.Errorf("newest digest %+v, want number 4 as signed", d)
		}
	})
	t.Run("verify whole and partial", func(t *testing.T) {
		r, err := audit.VerifyAuditChain(ctx, 7, 0, 0, keys)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Events != 100 || r.Digests != 4 || r.SignedUpTo != 100 {
			t.Fatalf("report %+v %v, want 100 events and 4 digests verified", r, r.Failure)
		}
		r, err = audit.VerifyAuditChain(ctx, 7, 30, 60, keys)
		if err != nil {
			t.Fatal(err)
		}
		// From digest 1 (1..25) to digest 3 (51..75).
		if !r.OK() || r.Anchor != 1 || r.FirstSeq != 26 || r.LastSeq != 75 {
			t.Fatalf("report %+v %v, want 26..75 from digest 1", r, r.Failure)
		}
	})
	t.Run("a batch sealed again after a crash changes nothing", func(t *testing.T) {
		if err := audit.InsertSealedEvents(ctx, batches[2]); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM audit_events FINAL WHERE chain = 7").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 100 {
			t.Errorf("%d events after the re-insert, want 100", n)
		}
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM audit_events_by_firm FINAL WHERE uscc = '91350100M000100Y43'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 100 {
			t.Errorf("%d events by firm, want 100", n)
		}
		r, err := audit.VerifyAuditChain(ctx, 7, 0, 0, keys)
		if err != nil || !r.OK() {
			t.Fatalf("verify after re-insert: %v %+v", err, r)
		}
	})
	t.Run("export round trip", func(t *testing.T) {
		var buf bytes.Buffer
		x := firmbridge.NewAuditExportWriter(&buf)
		n, err := audit.Export(ctx, x, 7, 40, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if n != 75 {
			t.Errorf("exported %d events, want 75 (26..100)", n)
		}
		exp, err := firmbridge.ReadAuditExport(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if r := firmbridge.VerifyChain(exp.Input(7, keys)); !r.OK() || r.Events != 75 {
			t.Fatalf("export verify: %+v %v", r, r.Failure)
		}
	})
	t.Run("chains", func(t *testing.T) {
		chains, err := audit.AuditChains(ctx)
		if err != nil || len(chains) != 1 || chains[0] != 7 {
			t.Fatalf("chains %v %v, want [7]", chains, err)
		}
	})
	t.Run("fail-closed guard", func(t *testing.T) {
		now := time.Now()
		g := &api.AuditGuard{Clock: audit, MaxAge: time.Minute, Now: func() time.Time { return now }}
		if err := g.Check(ctx); err != nil {
			t.Fatalf("fresh digests: %v", err)
		}
		now = now.Add(2 * time.Minute) // the cached answer, but measured now
		if err := g.Check(ctx); err == nil || firmbridge.ErrorCode(err) != "audit_stalled" {
			t.Fatalf("digests 2 minutes old: %v, want audit_stalled", err)
		}
		empty := &api.AuditGuard{Clock: schema.AuditStore{Store: testenv.Store(t)}, MaxAge: time.Hour}
		if !empty.Stale(ctx) {
			t.Error("no digest at all: not stale, want stale (fail closed)")
		}
	})
}
