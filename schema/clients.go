package schema

import (
	"context"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
)

// Client is a row of the clients table: an institution's OAuth2 client.
// SecretHash is the argon2id hash of its secret; the secret is never stored.
type Client struct {
	ID         string
	Name       string
	Role       string
	Org        string
	Scopes     []string
	SecretHash string
	Disabled   bool
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
	Version    uint64
}

// ClientStore reads and writes clients. Every change inserts the whole
// client with a higher version; reads use FINAL, exact here because the
// sorting key (id) never changes and the table has no partitions.
type ClientStore struct{ *Store }

const clientColumns = "id, name, role, org, scopes, secret_hash, disabled, created_at, created_by, updated_at, updated_by, version"

// SaveClient inserts the client's current state.
func (s ClientStore) SaveClient(ctx context.Context, c *Client) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO clients ("+clientColumns+")")
	if err != nil {
		return fmt.Errorf("save client %s: %w", c.ID, err)
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	var disabled uint8
	if c.Disabled {
		disabled = 1
	}
	if err := batch.Append(c.ID, c.Name, c.Role, c.Org, scopes, c.SecretHash, disabled,
		c.CreatedAt.UTC(), c.CreatedBy, c.UpdatedAt.UTC(), c.UpdatedBy, c.Version); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("save client %s: %w", c.ID, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save client %s: %w", c.ID, err)
	}
	return nil
}

// Client returns the newest state of one client, or ENOTFOUND.
func (s ClientStore) Client(ctx context.Context, id string) (*Client, error) {
	cs, err := s.query(ctx, "WHERE id = ?", id)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "client_not_found", "no client with id %s", id)
	}
	return cs[0], nil
}

// Clients returns every client, oldest first.
func (s ClientStore) Clients(ctx context.Context) ([]*Client, error) {
	return s.query(ctx, "")
}

func (s ClientStore) query(ctx context.Context, where string, args ...any) ([]*Client, error) {
	rows, err := s.conn.Query(ctx, "SELECT "+clientColumns+" FROM clients FINAL "+where+" ORDER BY created_at, id", args...)
	if err != nil {
		return nil, fmt.Errorf("read clients: %w", err)
	}
	defer rows.Close()
	var out []*Client
	for rows.Next() {
		var c Client
		var disabled uint8
		if err := rows.Scan(&c.ID, &c.Name, &c.Role, &c.Org, &c.Scopes, &c.SecretHash, &disabled,
			&c.CreatedAt, &c.CreatedBy, &c.UpdatedAt, &c.UpdatedBy, &c.Version); err != nil {
			return nil, fmt.Errorf("read clients: %w", err)
		}
		c.Disabled = disabled != 0
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read clients: %w", err)
	}
	return out, nil
}
