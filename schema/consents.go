package schema

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/firmbridge/firmbridge"
)

// ConsentStore is the firmbridge.ConsentStore on ClickHouse. Every change
// inserts the whole consent with a higher version; reads use FINAL, which is
// exact here because a consent's sorting key (uscc, id) never changes and
// the table has no partitions.
type ConsentStore struct{ *Store }

var (
	_ firmbridge.ConsentStore          = ConsentStore{}
	_ firmbridge.ConsentLifecycleStore = ConsentStore{}
)

const consentColumns = "id, uscc, grantee, scopes, purpose, status, valid_from, expires_at, data_from, created_at, updated_at, updated_by, version"

// SaveConsent inserts the consent's current state. Its details (requester,
// note, reason) go first, into consent_details under the same version: if
// the consent row then fails, the details row matches no stored version and
// is never read.
func (s ConsentStore) SaveConsent(ctx context.Context, c *firmbridge.Consent) error {
	if c.RequestedBy != "" || c.Note != "" || c.Reason != "" {
		if err := s.send(ctx, "INSERT INTO consent_details (id, uscc, grantee, version, requested_by, note, reason)",
			c.ID, c.USCC, c.Grantee, c.Version, c.RequestedBy, c.Note, c.Reason); err != nil {
			return fmt.Errorf("save consent %s: details: %w", c.ID, err)
		}
	}
	var dataFrom *time.Time
	if c.DataFrom != nil {
		d := c.DataFrom.UTC()
		dataFrom = &d
	}
	if err := s.send(ctx, "INSERT INTO consents ("+consentColumns+")",
		c.ID, c.USCC, c.Grantee, c.Scopes, c.Purpose, c.Status, c.ValidFrom.UTC(), c.ExpiresAt.UTC(),
		dataFrom, c.CreatedAt.UTC(), c.UpdatedAt.UTC(), c.UpdatedBy, c.Version); err != nil {
		return fmt.Errorf("save consent %s: %w", c.ID, err)
	}
	return nil
}

// send inserts one row as a batch: the only insert that works on every
// ClickHouse version we support (see DESIGN.md).
func (s ConsentStore) send(ctx context.Context, insert string, values ...any) error {
	batch, err := s.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	if err := batch.Append(values...); err != nil {
		_ = batch.Abort()
		return err
	}
	return batch.Send()
}

// Consent returns the newest state of one consent, or ENOTFOUND.
func (s ConsentStore) Consent(ctx context.Context, id string) (*firmbridge.Consent, error) {
	cs, err := s.query(ctx, "id = ?", id)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "consent_not_found", "no consent with id %s", id)
	}
	return cs[0], nil
}

// ConsentsForFirm returns a firm's consents, newest first.
func (s ConsentStore) ConsentsForFirm(ctx context.Context, uscc string) ([]*firmbridge.Consent, error) {
	return s.query(ctx, "uscc = ?", uscc)
}

// ConsentsForGrantee returns the consents granted to an institution, for one
// firm when uscc is set.
func (s ConsentStore) ConsentsForGrantee(ctx context.Context, grantee, uscc string) ([]*firmbridge.Consent, error) {
	if uscc != "" {
		return s.query(ctx, "uscc = ? AND grantee = ?", uscc, grantee)
	}
	return s.query(ctx, "grantee = ?", grantee)
}

// ConsentsPastExpiry implements firmbridge.ConsentLifecycleStore. The filter
// on status is applied after FINAL has picked each consent's newest state.
func (s ConsentStore) ConsentsPastExpiry(ctx context.Context, at time.Time, limit int) ([]*firmbridge.Consent, error) {
	return s.queryOrdered(ctx, "status IN ('ACTIVE', 'PENDING') AND expires_at <= ?", false, "expires_at, id LIMIT "+strconv.Itoa(max(limit, 1)), at.UTC())
}

func (s ConsentStore) query(ctx context.Context, where string, args ...any) ([]*firmbridge.Consent, error) {
	return s.queryOrdered(ctx, where, true, "created_at DESC, id", args...)
}

// queryOrdered reads the newest state of the consents matching where, with
// the details of that very version. When shared is set, where names only
// columns consent_details has too (id, uscc, grantee) and filters both
// sides, which keeps the join small on the profile path; otherwise the
// details are filtered by the ids the consents side finds.
func (s ConsentStore) queryOrdered(ctx context.Context, where string, shared bool, orderBy string, args ...any) ([]*firmbridge.Consent, error) {
	detailsWhere := where
	if !shared {
		detailsWhere = "id IN (SELECT id FROM consents FINAL WHERE " + where + ")"
	}
	q := "SELECT " + consentColumns + ", requested_by, note, reason FROM (SELECT " + consentColumns + " FROM consents FINAL WHERE " + where + ")" +
		" ANY LEFT JOIN (SELECT id, version, requested_by, note, reason FROM consent_details WHERE " + detailsWhere + ") USING (id, version)" +
		" ORDER BY " + orderBy
	rows, err := s.conn.Query(ctx, q, append(append([]any{}, args...), args...)...)
	if err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	defer rows.Close()
	var out []*firmbridge.Consent
	for rows.Next() {
		var c firmbridge.Consent
		var dataFrom *time.Time
		if err := rows.Scan(&c.ID, &c.USCC, &c.Grantee, &c.Scopes, &c.Purpose, &c.Status, &c.ValidFrom, &c.ExpiresAt,
			&dataFrom, &c.CreatedAt, &c.UpdatedAt, &c.UpdatedBy, &c.Version, &c.RequestedBy, &c.Note, &c.Reason); err != nil {
			return nil, fmt.Errorf("read consents: %w", err)
		}
		c.ValidFrom, c.ExpiresAt, c.CreatedAt, c.UpdatedAt = c.ValidFrom.UTC(), c.ExpiresAt.UTC(), c.CreatedAt.UTC(), c.UpdatedAt.UTC()
		if dataFrom != nil {
			d := dataFrom.UTC()
			c.DataFrom = &d
		}
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	return out, nil
}

const receiptColumns = "receipt_id, consent_id, uscc, grantee, event, seq, issued_at, jws, hash, prev, consent_version, state, written_at, version"

// SaveReceipt implements firmbridge.ConsentLifecycleStore.
func (s ConsentStore) SaveReceipt(ctx context.Context, r *firmbridge.ConsentReceipt) error {
	if err := s.send(ctx, "INSERT INTO consent_receipts ("+receiptColumns+")",
		r.ID, r.ConsentID, r.USCC, r.Grantee, r.Event, uint32(r.Seq), r.IssuedAt.UTC(), r.JWS, r.Hash, r.Prev,
		r.ConsentVersion, r.State, r.WrittenAt.UTC(), r.Version); err != nil {
		return fmt.Errorf("save receipt %s: %w", r.ID, err)
	}
	return nil
}

// ReceiptsOf implements firmbridge.ConsentLifecycleStore.
func (s ConsentStore) ReceiptsOf(ctx context.Context, consentID string) ([]*firmbridge.ConsentReceipt, error) {
	return s.receipts(ctx, "consent_id = ? ORDER BY seq, issued_at, receipt_id", consentID)
}

// UnpublishedReceipts implements firmbridge.ConsentLifecycleStore. FINAL
// scans the whole table: consent changes are few (a handful per consent),
// so this stays small next to the profile tables.
func (s ConsentStore) UnpublishedReceipts(ctx context.Context, writtenBefore time.Time, limit int) ([]*firmbridge.ConsentReceipt, error) {
	return s.receipts(ctx, "state = 'unpublished' AND written_at <= ? ORDER BY written_at, receipt_id LIMIT "+strconv.Itoa(max(limit, 1)), writtenBefore.UTC())
}

func (s ConsentStore) receipts(ctx context.Context, whereOrder string, args ...any) ([]*firmbridge.ConsentReceipt, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+receiptColumns+" FROM consent_receipts FINAL WHERE "+whereOrder, args...)
	if err != nil {
		return nil, fmt.Errorf("read receipts: %w", err)
	}
	defer rows.Close()
	var out []*firmbridge.ConsentReceipt
	for rows.Next() {
		var r firmbridge.ConsentReceipt
		var seq uint32
		if err := rows.Scan(&r.ID, &r.ConsentID, &r.USCC, &r.Grantee, &r.Event, &seq, &r.IssuedAt, &r.JWS, &r.Hash, &r.Prev,
			&r.ConsentVersion, &r.State, &r.WrittenAt, &r.Version); err != nil {
			return nil, fmt.Errorf("read receipts: %w", err)
		}
		r.Seq, r.IssuedAt, r.WrittenAt = int(seq), r.IssuedAt.UTC(), r.WrittenAt.UTC()
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read receipts: %w", err)
	}
	return out, nil
}
