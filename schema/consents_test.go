package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

const testFirm = "91350100M000100Y43"

func testConsent(id, status string, at time.Time, version uint64) *firmbridge.Consent {
	return &firmbridge.Consent{ID: id, USCC: testFirm, Grantee: "BANK-1", Scopes: []string{"tax", "patent"},
		Purpose: firmbridge.PurposeLoanMonitoring, Status: status, ValidFrom: at, ExpiresAt: at.Add(48 * time.Hour),
		CreatedAt: at, UpdatedAt: at, UpdatedBy: "u", Version: version}
}

func TestConsentStore_Details(t *testing.T) {
	store := testenv.Store(t)
	ctx := context.Background()
	cs := schema.ConsentStore{Store: store}
	at := time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)
	dataFrom := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

	pending := testConsent("req-1", firmbridge.ConsentPending, at, 10)
	pending.RequestedBy, pending.Note, pending.DataFrom = "officer@BANK-1", "for loan 42: 信用评估", &dataFrom
	if err := cs.SaveConsent(ctx, pending); err != nil {
		t.Fatal(err)
	}
	got, err := cs.Consent(ctx, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.RequestedBy != pending.RequestedBy || got.Note != pending.Note || got.Status != firmbridge.ConsentPending ||
		got.DataFrom == nil || !got.DataFrom.Equal(dataFrom) || !got.ValidFrom.Equal(at) || got.ValidFrom.Location() != time.UTC {
		t.Errorf("read back %+v, want the request with its requester, note and data_from %s", got, dataFrom)
	}

	// Details of a version whose consent row never got stored are not read.
	orphan := *got
	orphan.Status, orphan.Reason, orphan.Version = firmbridge.ConsentRejected, "never stored", 11
	batch, err := store.Conn().PrepareBatch(ctx, "INSERT INTO consent_details (id, uscc, grantee, version, requested_by, note, reason)")
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.Append(orphan.ID, orphan.USCC, orphan.Grantee, orphan.Version, orphan.RequestedBy, orphan.Note, orphan.Reason); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if got, _ := cs.Consent(ctx, "req-1"); got.Reason != "" || got.Version != 10 {
		t.Errorf("an unstored version's details leaked: %+v", got)
	}

	rejected := *got
	rejected.Status, rejected.Reason, rejected.Version = firmbridge.ConsentRejected, "no loan planned", 12
	if err := cs.SaveConsent(ctx, &rejected); err != nil {
		t.Fatal(err)
	}
	list, err := cs.ConsentsForGrantee(ctx, "BANK-1", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Reason != "no loan planned" || list[0].Note != pending.Note || list[0].Status != firmbridge.ConsentRejected {
		t.Errorf("ConsentsForGrantee = %+v, want the rejected request with note and reason", list)
	}
}

func TestConsentStore_PastExpiry(t *testing.T) {
	store := testenv.Store(t)
	ctx := context.Background()
	cs := schema.ConsentStore{Store: store}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []*firmbridge.Consent{
		testConsent("active", firmbridge.ConsentActive, at, 1),
		testConsent("pending", firmbridge.ConsentPending, at, 1),
		testConsent("revoked", firmbridge.ConsentRevoked, at, 1),
		testConsent("expired-later", firmbridge.ConsentActive, at, 1),
		testConsent("stored-expired", firmbridge.ConsentActive, at, 1),
	} {
		if c.ID == "expired-later" {
			c.ExpiresAt = at.Add(96 * time.Hour)
		}
		if err := cs.SaveConsent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// The newest state decides, even before ClickHouse merges.
	done := testConsent("stored-expired", firmbridge.ConsentExpired, at, 2)
	if err := cs.SaveConsent(ctx, done); err != nil {
		t.Fatal(err)
	}
	due, err := cs.ConsentsPastExpiry(ctx, at.Add(48*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range due {
		ids = append(ids, c.ID)
	}
	if len(ids) != 2 || ids[0] != "active" || ids[1] != "pending" {
		t.Errorf("past expiry: %v, want [active pending]", ids)
	}
	if due, _ := cs.ConsentsPastExpiry(ctx, at.Add(48*time.Hour-time.Second), 10); len(due) != 0 {
		t.Errorf("%d consents due a second before their expiry", len(due))
	}
}

func TestConsentStore_Receipts(t *testing.T) {
	store := testenv.Store(t)
	ctx := context.Background()
	cs := schema.ConsentStore{Store: store}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	receipt := func(event string, seq int, state string, version uint64, written time.Time) *firmbridge.ConsentReceipt {
		return &firmbridge.ConsentReceipt{ID: "c-1:" + event, ConsentID: "c-1", USCC: testFirm, Grantee: "BANK-1", Event: event,
			Seq: seq, IssuedAt: at, JWS: "jws-" + event, Hash: "hash-" + event, ConsentVersion: uint64(seq),
			State: state, WrittenAt: written, Version: version}
	}
	published := receipt(firmbridge.ConsentEventGranted, 1, firmbridge.ReceiptPublished, 1<<63|5, at)
	for _, r := range []*firmbridge.ConsentReceipt{
		receipt(firmbridge.ConsentEventGranted, 1, firmbridge.ReceiptUnpublished, 5, at),
		published,
		// A second instance writing the same receipt late does not
		// un-publish it.
		receipt(firmbridge.ConsentEventGranted, 1, firmbridge.ReceiptUnpublished, 9, at.Add(time.Minute)),
		receipt(firmbridge.ConsentEventExpired, 2, firmbridge.ReceiptUnpublished, 6, at),
		receipt(firmbridge.ConsentEventExpired, 2, firmbridge.ReceiptUnpublished, 6, at), // the same row twice
	} {
		if err := cs.SaveReceipt(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := cs.ReceiptsOf(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Event != firmbridge.ConsentEventGranted || rs[0].State != firmbridge.ReceiptPublished ||
		rs[1].Event != firmbridge.ConsentEventExpired || rs[1].Seq != 2 || !rs[1].IssuedAt.Equal(at) {
		t.Fatalf("ReceiptsOf = %+v, want granted (published) and expired", rs)
	}
	un, err := cs.UnpublishedReceipts(ctx, at, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 1 || un[0].ID != "c-1:expired" {
		t.Errorf("UnpublishedReceipts = %+v, want c-1:expired", un)
	}
	if un, _ := cs.UnpublishedReceipts(ctx, at.Add(-time.Second), 10); len(un) != 0 {
		t.Errorf("receipts written after the cutoff were returned: %+v", un)
	}
}
