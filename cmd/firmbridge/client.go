package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/schema"
)

const clientUsage = `Usage:
  firmbridge client create --name NAME --role ROLE --org ORG [--scopes a,b]
  firmbridge client list
  firmbridge client disable CLIENT_ID

create prints the client id and its secret; the secret is shown only this once.
`

// runClient manages OAuth2 clients directly in ClickHouse, as an operator
// with database access; the admin API does the same over HTTP.
func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, clientUsage)
		return errors.New("client needs create, list or disable")
	}
	fs, cfg := newFlags("client "+args[0], stderr)
	name := fs.String("name", "", "create: what the client is, e.g. the bank's loan system")
	role := fs.String("role", "", "create: bank, enterprise, regulator, provider or admin")
	org := fs.String("org", "", "create: institution id, or the firm's USCC for an enterprise")
	scopes := fs.String("scopes", "", "create: comma-separated data scopes (tax, patent, operations) that narrow what a bank client reads or a provider client sends; none: bounded by role and consent alone")
	by := fs.String("by", "", "who is acting, recorded on the client (default: cli:$USER)")
	if err := cfg.parse(fs, args[1:]); err != nil {
		return err
	}
	if *by == "" {
		*by = "cli"
		if u, err := user.Current(); err == nil {
			*by = "cli:" + u.Username
		}
	}
	store, err := schema.Open(ctx, cfg.schema())
	if err != nil {
		return err
	}
	defer store.Close()
	store.Logger = newLogger(stderr, cfg.LogLevel)
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	clients, err := api.NewClients(clientStore{schema.ClientStore{Store: store}}, nil)
	if err != nil {
		return err
	}
	clients.Logger = store.Logger

	switch args[0] {
	case "create":
		if fs.NArg() != 0 {
			return fmt.Errorf("client create takes no arguments, got %q", fs.Args())
		}
		req := api.CreateClientRequest{Name: *name, Role: *role, Org: *org}
		for _, s := range strings.Split(*scopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				req.Scopes = append(req.Scopes, s)
			}
		}
		created, err := clients.Create(ctx, *by, req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client_id=%s\nclient_secret=%s\n", created.ID, created.ClientSecret)
		fmt.Fprintln(stderr, "store the secret now: it is not shown again and cannot be recovered")
		return nil
	case "list":
		list, err := clients.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLIENT_ID\tROLE\tORG\tSTATUS\tCREATED\tNAME")
		for _, c := range list {
			status := "enabled"
			if c.Disabled {
				status = "disabled"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Role, c.Org, status, c.CreatedAt.Format(time.RFC3339), c.Name)
		}
		return w.Flush()
	case "disable":
		if fs.NArg() != 1 {
			return errors.New("client disable takes one client id")
		}
		c, err := clients.Disable(ctx, *by, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "client %s disabled; tokens it already holds expire within the token TTL\n", c.ID)
		return nil
	default:
		fmt.Fprint(stderr, clientUsage)
		return fmt.Errorf("unknown client command %q", args[0])
	}
}

// clientStore is the api.ClientStore on ClickHouse. api and schema do not
// import each other; their Client types have the same fields, so this
// adapter only converts.
type clientStore struct{ s schema.ClientStore }

func (a clientStore) SaveClient(ctx context.Context, c *api.Client) error {
	return a.s.SaveClient(ctx, (*schema.Client)(c))
}

func (a clientStore) Client(ctx context.Context, id string) (*api.Client, error) {
	c, err := a.s.Client(ctx, id)
	return (*api.Client)(c), err
}

func (a clientStore) Clients(ctx context.Context) ([]*api.Client, error) {
	list, err := a.s.Clients(ctx)
	out := make([]*api.Client, len(list))
	for i, c := range list {
		out[i] = (*api.Client)(c)
	}
	return out, err
}

// configureAuth gives the server its client store, verification keys for
// a key rotation, rate limits and body limit, from cfg.
func configureAuth(cfg *Config, srv *api.Server, store *schema.Store, reg prometheus.Registerer) error {
	rates, ttl, maxBody, err := cfg.apiLimits()
	if err != nil {
		return err
	}
	for _, path := range strings.Split(cfg.VerifyKeyFiles, ",") {
		if path = strings.TrimSpace(path); path == "" {
			continue
		}
		k, err := api.LoadVerifyKey(path)
		if err != nil {
			return err
		}
		srv.Tokens.Verify = append(srv.Tokens.Verify, k)
	}
	clients, err := api.NewClients(clientStore{schema.ClientStore{Store: store}}, reg)
	if err != nil {
		return err
	}
	clients.Logger = srv.Logger
	srv.Clients, srv.TokenTTL, srv.MaxBodyBytes = clients, ttl, maxBody
	srv.RateLimits = api.NewRateLimiter(rates, nil)
	return nil
}
