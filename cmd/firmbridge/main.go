// Command firmbridge is the platform's one binary: the API server, the ingest
// workers, migrations, tokens, demo data and benchmarks, as subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `firmbridge — enterprise data sharing between providers, firms, banks and regulators

Usage: firmbridge <command> [flags]

Commands:
  serve      run the REST API (migrates the schema first)
  ingest     run the ingest workers: raw topics into ClickHouse, and the audit sealer (hash chains, signed digests)
  migrate    apply schema migrations and create the Kafka topics
  token      print a signed access token: token --role ROLE --org ORG [--ttl 1h]
  keygen     create the Ed25519 token signing key and the audit digest signing key (--audit: only the latter)
  audit      the sealed access log: audit verify [--from N --to M] [--chain C] [--export FILE], audit export, audit public-key
  client     manage OAuth2 clients: client create|list|disable
  demo       publish generated provider data for a few hundred firms and grant demo consents
  normalize  check a provider file or envelopes offline: one JSON line per canonical row or reject
  bench      measure throughput against baselines in the same run: bench ingest [--records N]
  healthcheck  ask a health endpoint and fail unless it answers 2xx (for images without curl): healthcheck --url URL

Every command takes -h for its flags. Settings also come from FIRMBRIDGE_* environment variables.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "firmbridge:", err)
		}
		os.Exit(1)
	}
}

// run dispatches one subcommand; tests call it as the binary would.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	commands := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"serve":       runServe,
		"ingest":      runIngest,
		"migrate":     runMigrate,
		"token":       runToken,
		"keygen":      runKeygen,
		"audit":       runAudit,
		"client":      runClient,
		"demo":        runDemo,
		"normalize":   runNormalize,
		"bench":       runBench,
		"healthcheck": runHealthcheck,
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:], stdout, stderr)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *Config) {
	fs := flag.NewFlagSet("firmbridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &Config{}
	cfg.register(fs)
	return fs, cfg
}
