package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/schema"
)

const auditUsage = `Usage: firmbridge audit <command> [flags]

Commands:
  verify      verify the sealed access log from ClickHouse, or from an export (--export FILE)
  export      write chains with their digests as JSON lines, for verification elsewhere
  public-key  print the public half of the audit signing key (PEM), for regulators
`

// runAudit is `firmbridge audit ...`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	case "export":
		return runAuditExport(ctx, args[1:], stdout, stderr)
	case "public-key":
		return runAuditPublicKey(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("unknown audit command %q", args[0])
}

// chainRangeFlags are the flags that select what to verify or export.
type chainRangeFlags struct {
	chain    int
	from, to uint64
}

func (r *chainRangeFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.chain, "chain", -1, "only this chain (the partition of audit.access.v1); default every chain")
	fs.Uint64Var(&r.from, "from", 0, "first sequence number (default: the chain's beginning)")
	fs.Uint64Var(&r.to, "to", 0, "last sequence number (default: the chain's end)")
}

func (r *chainRangeFlags) check() error {
	if r.to > 0 && r.from > r.to {
		return fmt.Errorf("--from %d is after --to %d", r.from, r.to)
	}
	if r.chain < -1 || int64(r.chain) > int64(^uint32(0)) {
		return fmt.Errorf("--chain %d is not a chain number", r.chain)
	}
	return nil
}

// chains are the chains to work on: the one asked for, or all there are.
func (r *chainRangeFlags) chains(all []uint32) []uint32 {
	if r.chain >= 0 {
		return []uint32{uint32(r.chain)}
	}
	return all
}

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("audit verify", stderr)
	var rng chainRangeFlags
	rng.register(fs)
	exportFile := fs.String("export", "", "verify this export file (firmbridge audit export) instead of ClickHouse")
	publicKeys := fs.String("public-key", "", "comma-separated PEM files of the keys digests may be signed with (public or private); default the audit key file")
	requireSigned := fs.Bool("require-signed", false, "fail when events follow the newest digest (use when the sealer is stopped)")
	asJSON := fs.Bool("json", false, "print one JSON report per chain")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if err := rng.check(); err != nil {
		return err
	}
	keys, err := loadAuditKeys(*publicKeys, cfg)
	if err != nil {
		return err
	}

	var reports []*firmbridge.ChainReport
	if *exportFile != "" {
		f, err := os.Open(*exportFile)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		exp, err := firmbridge.ReadAuditExport(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("audit verify %s: %w", *exportFile, err)
		}
		for _, chain := range rng.chains(exp.Chains) {
			// An export is verified whole: --from and --to chose what went into it.
			r := firmbridge.VerifyChain(exp.Input(chain, keys))
			reports = append(reports, &r)
		}
	} else {
		store, err := schema.Open(ctx, cfg.schema())
		if err != nil {
			return err
		}
		defer store.Close()
		audit := schema.AuditStore{Store: store}
		all, err := audit.AuditChains(ctx)
		if err != nil {
			return err
		}
		for _, chain := range rng.chains(all) {
			r, err := audit.VerifyAuditChain(ctx, chain, rng.from, rng.to, keys)
			if err != nil {
				return err
			}
			reports = append(reports, r)
		}
	}
	if len(reports) == 0 {
		return errors.New("audit verify: no chain to verify (nothing sealed yet, or the chain asked for does not exist)")
	}

	var failed []string
	for _, r := range reports {
		if *requireSigned {
			r.RequireSigned()
		}
		if *asJSON {
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			printChainReport(stdout, r)
		}
		if !r.OK() {
			failed = append(failed, fmt.Sprintf("chain %d at seq %d (%s)", r.Chain, r.Failure.Seq, r.Failure.Kind))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("audit verify: the access log does not verify: %s", strings.Join(failed, "; "))
	}
	return nil
}

func printChainReport(w io.Writer, r *firmbridge.ChainReport) {
	status := "OK"
	if !r.OK() {
		status = fmt.Sprintf("FAILED at seq %d: %s: %s", r.Failure.Seq, r.Failure.Kind, r.Failure.Message)
	}
	from := "the chain's beginning"
	if r.Anchor > 0 {
		from = fmt.Sprintf("digest %d", r.Anchor)
	}
	events := "no events"
	if r.Events > 0 {
		events = fmt.Sprintf("events %d..%d (%d)", r.FirstSeq, r.LastSeq, r.Events)
	}
	verb := "verified"
	if !r.OK() {
		verb = "verified before the failure"
	}
	fmt.Fprintf(w, "chain %d: %s\n  %s and %d digests %s, starting from %s; signed up to seq %d; %d events not yet signed\n",
		r.Chain, status, events, r.Digests, verb, from, r.SignedUpTo, r.Unsigned)
}

// loadAuditKeys reads the trusted digest keys: the files named, or else
// the audit signing key itself.
func loadAuditKeys(files string, cfg *Config) (firmbridge.AuditKeys, error) {
	var paths []string
	for _, p := range strings.Split(files, ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		paths = []string{cfg.auditKeyFile()}
	}
	keys := firmbridge.AuditKeys{}
	for _, p := range paths {
		k, err := api.LoadVerifyKey(p)
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		keys[k.ID] = k.Public
	}
	return keys, nil
}

func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("audit export", stderr)
	var rng chainRangeFlags
	rng.register(fs)
	out := fs.String("out", "", "write to this file instead of standard output")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if err := rng.check(); err != nil {
		return err
	}
	store, err := schema.Open(ctx, cfg.schema())
	if err != nil {
		return err
	}
	defer store.Close()
	audit := schema.AuditStore{Store: store}
	all, err := audit.AuditChains(ctx)
	if err != nil {
		return err
	}
	w := stdout
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		defer f.Close()
		w = f
	}
	x := firmbridge.NewAuditExportWriter(w)
	total := 0
	for _, chain := range rng.chains(all) {
		n, err := audit.Export(ctx, x, chain, rng.from, rng.to)
		if err != nil {
			return err
		}
		total += n
	}
	if err := x.Close(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		fmt.Fprintf(stderr, "exported %d events of %d chains to %s\n", total, len(rng.chains(all)), *out)
	}
	return nil
}

func runAuditPublicKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("audit public-key", stderr)
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	k, err := api.LoadVerifyKey(cfg.auditKeyFile())
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public)
	if err != nil {
		return fmt.Errorf("audit key: %w", err)
	}
	fmt.Fprintf(stderr, "key id %s\n", k.ID)
	return pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
