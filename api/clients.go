package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Client is an institution's OAuth2 client: it trades its id and secret at
// POST /v1/auth/token for a token carrying Role and Org. Only the hash of
// the secret is kept.
type Client struct {
	ID         string    `json:"client_id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Org        string    `json:"org"`
	Scopes     []string  `json:"scopes"`
	SecretHash string    `json:"-"`
	Disabled   bool      `json:"disabled"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by"`
	UpdatedAt  time.Time `json:"updated_at"`
	UpdatedBy  string    `json:"updated_by"`
	Version    uint64    `json:"-"`
}

// ClientStore keeps clients. Saving a client with a higher Version replaces
// the older state; Client returns an ENOTFOUND error for an unknown id.
type ClientStore interface {
	SaveClient(ctx context.Context, c *Client) error
	Client(ctx context.Context, id string) (*Client, error)
	Clients(ctx context.Context) ([]*Client, error)
}

// CreateClientRequest is the body of POST /v1/admin/clients.
type CreateClientRequest struct {
	Name   string   `json:"name"`
	Role   string   `json:"role"`
	Org    string   `json:"org"`
	Scopes []string `json:"scopes"`
}

// CreatedClient is a new client with its secret, the only time the secret
// is shown.
type CreatedClient struct {
	*Client
	ClientSecret string `json:"client_secret"`
}

// Clients registers clients and authenticates them.
type Clients struct {
	Store  ClientStore
	Logger *slog.Logger
	Now    func() time.Time
	// Failures counts failed client authentications by reason; optional.
	Failures *prometheus.CounterVec

	argon argonParams
	// hashing bounds concurrent argon2id runs, each of which holds its
	// memory cost, so a flood of token requests cannot exhaust memory.
	hashing   chan struct{}
	dummyOnce sync.Once
	dummy     string
	dummyErr  error
}

// NewClients returns the client service on store, registering its failure
// counter with reg when reg is not nil.
func NewClients(store ClientStore, reg prometheus.Registerer) (*Clients, error) {
	c := &Clients{Store: store, argon: defaultArgon, hashing: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	c.Failures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "api", Name: "client_auth_failures_total",
		Help: "Failed OAuth2 client authentications at /v1/auth/token, by reason."}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(c.Failures); err != nil {
			return nil, fmt.Errorf("register client metrics: %w", err)
		}
	}
	// Made now, so that not even the first unknown client id costs more.
	if _, err := c.dummyHash(); err != nil {
		return nil, err
	}
	return c, nil
}

func (cs *Clients) now() time.Time {
	if cs.Now != nil {
		return cs.Now()
	}
	return time.Now()
}

func (cs *Clients) logger() *slog.Logger {
	if cs.Logger != nil {
		return cs.Logger
	}
	return slog.Default()
}

func (cs *Clients) params() argonParams {
	if cs.argon.Memory == 0 {
		return defaultArgon
	}
	return cs.argon
}

var (
	orgPattern        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	scopeTokenPattern = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]{1,64}$`) // RFC 6749 §3.3 scope-token
)

// clientScopes checks a registration's scopes: the data scopes a bank
// client may read or a provider client may send, which its tokens carry
// and every data route enforces (firmbridge.Identity.Scopes). Other roles
// reach no data by scope, so scopes there would promise a limit that
// nothing applies.
func clientScopes(role string, requested []string) ([]string, error) {
	scopes := []string{}
	for _, s := range requested {
		if !firmbridge.ValidScope(s) {
			return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "scopes",
				Message: fmt.Sprintf("unknown scope %q: a client's scopes are the data scopes tax, patent and operations", s)}
		}
		if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if len(scopes) > 0 && role != firmbridge.RoleBank && role != firmbridge.RoleProvider {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "scopes",
			Message: "only bank and provider clients take scopes, which narrow the data they read or send"}
	}
	return scopes, nil
}

// Create registers a client and returns it with its secret.
func (cs *Clients) Create(ctx context.Context, by string, req CreateClientRequest) (*CreatedClient, error) {
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 200 {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "name", Message: "name is required, at most 200 bytes"}
	}
	if !firmbridge.ValidRole(req.Role) {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "role", Message: "role must be bank, enterprise, regulator, provider or admin"}
	}
	org := strings.TrimSpace(req.Org)
	if req.Role == firmbridge.RoleEnterprise {
		// An enterprise acts for its own firm: its org is the firm's USCC.
		uscc, err := connectors.NormalizeUSCC(org)
		if err != nil {
			return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "org", Message: "an enterprise client's org must be the firm's USCC: " + err.Error()}
		}
		org = uscc
	} else if !orgPattern.MatchString(org) {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_client_registration", Field: "org", Message: "org must be 1-64 letters, digits, '.', '_', ':' or '-'"}
	}
	scopes, err := clientScopes(req.Role, req.Scopes)
	if err != nil {
		return nil, err
	}
	secret, err := newClientSecret()
	if err != nil {
		return nil, err
	}
	hash, err := hashSecret(secret, cs.params())
	if err != nil {
		return nil, err
	}
	now := cs.now().UTC()
	c := &Client{ID: newID(), Name: name, Role: req.Role, Org: org, Scopes: scopes, SecretHash: hash,
		CreatedAt: now.Truncate(time.Second), CreatedBy: by, UpdatedAt: now.Truncate(time.Second), UpdatedBy: by,
		Version: firmbridge.VersionOf(now)}
	if err := cs.Store.SaveClient(ctx, c); err != nil {
		return nil, err
	}
	cs.logger().Info("client registered", "client_id", c.ID, "role", c.Role, "org", c.Org, "by", by)
	return &CreatedClient{Client: c, ClientSecret: secret}, nil
}

// List returns every client, without secrets.
func (cs *Clients) List(ctx context.Context) ([]*Client, error) {
	list, err := cs.Store.Clients(ctx)
	if list == nil {
		list = []*Client{}
	}
	return list, err
}

// Disable stops a client from getting new tokens. Tokens it already holds
// stay valid until they expire, which the token TTL bounds. Disabling a
// disabled client changes nothing.
func (cs *Clients) Disable(ctx context.Context, by, id string) (*Client, error) {
	c, err := cs.Store.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return c, nil
	}
	now := cs.now().UTC()
	c.Disabled, c.UpdatedAt, c.UpdatedBy = true, now.Truncate(time.Second), by
	c.Version = max(c.Version+1, firmbridge.VersionOf(now))
	if err := cs.Store.SaveClient(ctx, c); err != nil {
		return nil, err
	}
	cs.logger().Info("client disabled", "client_id", c.ID, "by", by)
	return c, nil
}

// errInvalidClient is the one answer to every failed client
// authentication, so callers cannot tell an unknown id from a wrong secret
// or a disabled client.
var errInvalidClient = firmbridge.Errorf(firmbridge.EUNAUTHORIZED, "invalid_client", "client authentication failed")

// Authenticate returns the enabled client whose id and secret match. An
// unknown id costs the same hash as a known one, so timing does not tell
// whether an id exists.
func (cs *Clients) Authenticate(ctx context.Context, id, secret string) (*Client, error) {
	var c *Client
	if id != "" && len(id) <= 128 {
		var err error
		c, err = cs.Store.Client(ctx, id)
		if err != nil && firmbridge.ErrorKind(err) != firmbridge.ENOTFOUND {
			return nil, fmt.Errorf("authenticate client: %w", err)
		}
	}
	var hash string
	if c != nil {
		hash = c.SecretHash
	} else {
		var err error
		if hash, err = cs.dummyHash(); err != nil {
			return nil, err
		}
	}
	if len(secret) > maxClientSecretLen {
		secret = ""
	}
	ok, err := cs.verify(ctx, secret, hash)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("authenticate client: %w", err)
		}
		// A row whose hash does not parse can never authenticate.
		cs.logger().Error("client secret hash unreadable", "client_id", id, "err", err)
		ok = false
	}
	reason := ""
	switch {
	case c == nil:
		reason = "unknown_client"
	case !ok:
		reason = "bad_secret"
	case c.Disabled:
		reason = "disabled"
	}
	if reason != "" {
		cs.fail(reason, id)
		return nil, errInvalidClient
	}
	return c, nil
}

// fail counts and logs a failed authentication; the client id is logged
// because it is not a secret, and only its first 64 bytes, because anyone
// can send one.
func (cs *Clients) fail(reason, id string) {
	if cs.Failures != nil {
		cs.Failures.WithLabelValues(reason).Inc()
	}
	if len(id) > 64 {
		id = id[:64]
	}
	cs.logger().Info("client authentication failed", "reason", reason, "client_id", id)
}

// verify runs one argon2id comparison, waiting for a free hashing slot.
func (cs *Clients) verify(ctx context.Context, secret, hash string) (bool, error) {
	if cs.hashing != nil {
		select {
		case cs.hashing <- struct{}{}:
			defer func() { <-cs.hashing }()
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return verifySecret(secret, hash)
}

// dummyHash is the hash unknown client ids are checked against.
func (cs *Clients) dummyHash() (string, error) {
	cs.dummyOnce.Do(func() {
		secret, err := newClientSecret()
		if err != nil {
			cs.dummyErr = err
			return
		}
		cs.dummy, cs.dummyErr = hashSecret(secret, cs.params())
	})
	if cs.dummyErr != nil {
		return "", cs.dummyErr
	}
	return cs.dummy, nil
}

// errClientsOff answers the client routes of a server without a client store.
var errClientsOff = firmbridge.Errorf(firmbridge.EUNAVAILABLE, "clients_unavailable", "this server does not manage OAuth2 clients")

func (s *Server) handleCreateClient(c *gin.Context) {
	ev := s.newEvent(c)
	if s.Clients == nil {
		s.respond(c, ev, 0, nil, errClientsOff)
		return
	}
	var req CreateClientRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		s.respond(c, ev, 0, nil, firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "the body is not a client registration: %v", err))
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	created, err := s.Clients.Create(c.Request.Context(), id.Subject, req)
	// The body carries the secret: no cache may keep it.
	c.Header("Cache-Control", "no-store")
	s.respond(c, ev, http.StatusCreated, created, err)
}

func (s *Server) handleListClients(c *gin.Context) {
	ev := s.newEvent(c)
	if s.Clients == nil {
		s.respond(c, ev, 0, nil, errClientsOff)
		return
	}
	list, err := s.Clients.List(c.Request.Context())
	s.respond(c, ev, http.StatusOK, gin.H{"clients": list}, err)
}

func (s *Server) handleDisableClient(c *gin.Context) {
	ev := s.newEvent(c)
	if s.Clients == nil {
		s.respond(c, ev, 0, nil, errClientsOff)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	client, err := s.Clients.Disable(c.Request.Context(), id.Subject, c.Param("id"))
	s.respond(c, ev, http.StatusOK, client, err)
}
