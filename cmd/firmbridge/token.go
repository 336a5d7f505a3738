package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/firmbridge/firmbridge/api"
)

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("token", stderr)
	role := fs.String("role", "", "bank, enterprise, regulator, provider or admin")
	org := fs.String("org", "", "institution id, or the firm's USCC for an enterprise")
	sub := fs.String("sub", "", "subject (default: operator@ORG)")
	ttl := fs.Duration("ttl", defaultTokenTTL, "lifetime, at most 24h")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if *role == "" || *org == "" {
		fs.Usage()
		return errors.New("token needs --role and --org")
	}
	key, err := api.LoadSigningKey(cfg.KeyFile)
	if err != nil {
		return err
	}
	if *sub == "" {
		*sub = "operator@" + *org
	}
	tokens := &api.Tokens{Issuer: cfg.Issuer, Audience: cfg.Audience, Signing: key}
	tok, err := tokens.Issue(*sub, *role, *org, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("keygen", stderr)
	ifMissing := fs.Bool("if-missing", false, "do nothing for a key file that exists")
	auditOnly := fs.Bool("audit", false, "create only the audit digest signing key (--audit-key-file)")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	// The token key first, as before; then the audit key, so that one
	// `keygen --if-missing` readies a fresh machine for serve and ingest.
	if !*auditOnly {
		if err := writeNewKey(cfg.KeyFile, "signing key", *ifMissing, stdout); err != nil {
			return err
		}
	}
	return writeNewKey(cfg.auditKeyFile(), "audit signing key", *ifMissing, stdout)
}

func writeNewKey(path, what string, ifMissing bool, stdout io.Writer) error {
	if _, err := os.Stat(path); err == nil && ifMissing {
		return nil
	}
	key, err := api.GenerateSigningKey()
	if err != nil {
		return err
	}
	if err := api.WriteSigningKey(path, key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s %s (kid %s)\n", what, path, key.ID)
	return nil
}
