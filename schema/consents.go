package schema

import (
	"context"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
)

// ConsentStore is the firmbridge.ConsentStore on ClickHouse. Every change
// inserts the whole consent with a higher version; reads use FINAL, which is
// exact here because a consent's sorting key (uscc, id) never changes and
// the table has no partitions.
type ConsentStore struct{ *Store }

var _ firmbridge.ConsentStore = ConsentStore{}

const consentColumns = "id, uscc, grantee, scopes, purpose, status, valid_from, expires_at, data_from, created_at, updated_at, updated_by, version"

// SaveConsent inserts the consent's current state.
func (s ConsentStore) SaveConsent(ctx context.Context, c *firmbridge.Consent) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO consents ("+consentColumns+")")
	if err != nil {
		return fmt.Errorf("save consent %s: %w", c.ID, err)
	}
	var dataFrom *time.Time
	if c.DataFrom != nil {
		d := c.DataFrom.UTC()
		dataFrom = &d
	}
	if err := batch.Append(c.ID, c.USCC, c.Grantee, c.Scopes, c.Purpose, c.Status, c.ValidFrom.UTC(), c.ExpiresAt.UTC(),
		dataFrom, c.CreatedAt.UTC(), c.UpdatedAt.UTC(), c.UpdatedBy, c.Version); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("save consent %s: %w", c.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save consent %s: %w", c.ID, err)
	}
	return nil
}

// Consent returns the newest state of one consent, or ENOTFOUND.
func (s ConsentStore) Consent(ctx context.Context, id string) (*firmbridge.Consent, error) {
	cs, err := s.query(ctx, "WHERE id = ?", id)
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
	return s.query(ctx, "WHERE uscc = ?", uscc)
}

// ConsentsForGrantee returns the consents granted to an institution, for one
// firm when uscc is set.
func (s ConsentStore) ConsentsForGrantee(ctx context.Context, grantee, uscc string) ([]*firmbridge.Consent, error) {
	if uscc != "" {
		return s.query(ctx, "WHERE uscc = ? AND grantee = ?", uscc, grantee)
	}
	return s.query(ctx, "WHERE grantee = ?", grantee)
}

func (s ConsentStore) query(ctx context.Context, where string, args ...any) ([]*firmbridge.Consent, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+consentColumns+" FROM consents FINAL "+where+" ORDER BY created_at DESC, id", args...)
	if err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	defer rows.Close()
	var out []*firmbridge.Consent
	for rows.Next() {
		var c firmbridge.Consent
		var dataFrom *time.Time
		if err := rows.Scan(&c.ID, &c.USCC, &c.Grantee, &c.Scopes, &c.Purpose, &c.Status, &c.ValidFrom, &c.ExpiresAt,
			&dataFrom, &c.CreatedAt, &c.UpdatedAt, &c.UpdatedBy, &c.Version); err != nil {
			return nil, fmt.Errorf("read consents: %w", err)
		}
		c.DataFrom = dataFrom
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read consents: %w", err)
	}
	return out, nil
}
