package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// demoBank is the institution the demo grants consents to.
const demoBank = "BANK-DEMO-001"

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("demo", stderr)
	nFirms := fs.Int("firms", 300, "how many firms to generate")
	seed := fs.Int64("seed", 1, "generator seed; the same seed yields the same firms and record ids")
	months := fs.Int("months", 24, "months of history per firm")
	wait := fs.Duration("wait", 3*time.Minute, "how long to wait for the ingest workers to store the data")
	filesDir := fs.String("files", ".local/demo", "also write the data as the providers' own files here, for `firmbridge normalize` (empty: don't)")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel)
	store, err := openAndMigrate(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	store.Logger = logger
	key, err := api.LoadSigningKey(cfg.KeyFile)
	if err != nil {
		return err
	}

	// History ends with last month, so no period lies in the future.
	end := time.Now().UTC()
	firms := synth.Firms(*seed, *nFirms)
	envelopes := synth.Envelopes(*seed, firms, *months, end, synth.Options{})
	if *filesDir != "" {
		files, err := synth.WriteFiles(*filesDir, envelopes)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d provider files to %s\n", len(files), *filesDir)
	}
	vatRecords := map[string]bool{}
	for _, env := range envelopes {
		if env.Source == "tax.vat_return" {
			vatRecords[env.RecordID] = true
		}
	}
	counts, err := publishEnvelopes(ctx, cfg.kafka(), envelopes, firmbridge.RawOrigin{Org: "firmbridge-demo"})
	if err != nil {
		return err
	}
	for _, d := range firmbridge.Domains {
		fmt.Fprintf(stdout, "published %6d records to %s\n", counts[d], cfg.kafka().Topic(firmbridge.RawTopic(d)))
	}

	granted, err := grantDemoConsents(ctx, schema.ConsentStore{Store: store}, firms)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo consents for %s: %d new (half of the firms consent to every scope for credit_assessment)\n", demoBank, granted)

	if err := waitForVAT(ctx, store, len(vatRecords), *wait); err != nil {
		return err
	}

	tokens := &api.Tokens{Issuer: cfg.Issuer, Audience: cfg.Audience, Signing: key}
	const ttl = 12 * time.Hour
	bank, err := tokens.Issue("analyst@"+demoBank, firmbridge.RoleBank, demoBank, ttl)
	if err != nil {
		return err
	}
	consenting, refusing := firms[0], firms[1]
	enterprise, err := tokens.Issue("cfo@"+consenting.USCC, firmbridge.RoleEnterprise, consenting.USCC, ttl)
	if err != nil {
		return err
	}
	regulator, err := tokens.Issue("inspector@REG-PBOC", firmbridge.RoleRegulator, "REG-PBOC", ttl)
	if err != nil {
		return err
	}
	base := "http://" + cfg.HTTPAddr
	fmt.Fprintf(stdout, `
firmbridge is up.

  API          %s   (health: %s/readyz, keys: %s/.well-known/jwks.json)
  demo firms   %d, e.g. %s %s (consented) and %s %s (no consent)

Tokens (valid %s; make more with: .local/bin/firmbridge token --role bank --org %s):
  export BANK=%s
  export ENTERPRISE=%s
  export REGULATOR=%s

A bank reads a consented firm's profile:
  curl -s -H "Authorization: Bearer $BANK" "%s/v1/firms/%s/profile?purpose=credit_assessment"
and is refused (403 consent_required) for a firm without consent:
  curl -s -H "Authorization: Bearer $BANK" "%s/v1/firms/%s/profile?purpose=credit_assessment"
The enterprise lists its consents:
  curl -s -H "Authorization: Bearer $ENTERPRISE" "%s/v1/consents"
A provider checks an export before sending it:
  .local/bin/firmbridge normalize --source tax.vat_return %s/tax.vat_return.csv | head -3
`, base, base, base, len(firms), consenting.USCC, consenting.Name, refusing.USCC, refusing.Name,
		ttl, demoBank, bank, enterprise, regulator, base, consenting.USCC, base, refusing.USCC, base, *filesDir)
	return nil
}

// grantDemoConsents grants the demo bank consent from every other firm
// (firms[0], firms[2], ...). Ids are stable, and a consent that exists is
// left alone, so a second run neither duplicates nor revives a revoked one.
func grantDemoConsents(ctx context.Context, consents schema.ConsentStore, firms []synth.Firm) (int, error) {
	now := time.Now().UTC().Truncate(time.Second)
	granted := 0
	for i := 0; i < len(firms); i += 2 {
		f := firms[i]
		id := "demo-" + f.USCC + "-" + demoBank
		if _, err := consents.Consent(ctx, id); err == nil {
			continue
		} else if firmbridge.ErrorKind(err) != firmbridge.ENOTFOUND {
			return granted, err
		}
		c := &firmbridge.Consent{ID: id, USCC: f.USCC, Grantee: demoBank, Scopes: firmbridge.Scopes,
			Purpose: firmbridge.PurposeCreditAssessment, Status: firmbridge.ConsentActive, ValidFrom: now,
			ExpiresAt: now.Add(firmbridge.MaxConsentDuration[firmbridge.PurposeCreditAssessment]),
			CreatedAt: now, UpdatedAt: now, UpdatedBy: "demo", Version: firmbridge.VersionOf(now)}
		if err := c.Validate(); err != nil {
			return granted, err
		}
		if err := consents.SaveConsent(ctx, c); err != nil {
			return granted, err
		}
		granted++
	}
	return granted, nil
}

// waitForVAT waits until the ingest workers stored every demo VAT return.
func waitForVAT(ctx context.Context, store *schema.Store, want int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var got uint64
	for {
		if err := store.Conn().QueryRow(ctx, "SELECT uniqExact(record_id) FROM tax_vat_returns").Scan(&got); err != nil {
			return fmt.Errorf("count stored VAT returns: %w", err)
		}
		if got >= uint64(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s only %d of %d demo VAT returns are in ClickHouse: is `firmbridge ingest` running? (see .local/log/ingest.log)", wait, got, want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// publishEnvelopes writes envelopes to the raw topics of their domains, in
// chunks, through the same publisher providers' pushes use. It returns how
// many went to each domain.
func publishEnvelopes(ctx context.Context, kcfg kafka.Config, envs []firmbridge.Envelope, origin firmbridge.RawOrigin) (map[string]int, error) {
	byDomain := map[string][]firmbridge.Envelope{}
	for _, env := range envs {
		d := firmbridge.SourceDomain(env.Source)
		byDomain[d] = append(byDomain[d], env)
	}
	pub := kafka.NewRawPublisher(kcfg)
	defer pub.Close()
	counts := map[string]int{}
	for d, list := range byDomain {
		for start := 0; start < len(list); start += 5000 {
			if err := pub.PublishRaw(ctx, d, list[start:min(start+5000, len(list))], origin); err != nil {
				return counts, err
			}
		}
		counts[d] = len(list)
	}
	return counts, nil
}
