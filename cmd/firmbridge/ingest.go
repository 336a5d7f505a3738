package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "replay-dlq" {
		return runReplayDLQ(ctx, args[1:], stdout, stderr)
	}
	tuneGCForIngest()
	fs, cfg := newFlags("ingest", stderr)
	group := fs.String("group", "firmbridge-ingest", "Kafka consumer group id prefix")
	workers := fs.Int("workers", 1, "consumers per topic in the group")
	batchRows := fs.Int("batch-rows", 50000, "flush a batch at this many rows")
	batchWait := fs.Duration("batch-wait", time.Second, "or this long after its first record")
	batchIdle := fs.Duration("batch-idle", 250*time.Millisecond, "or, with at least a tenth of --batch-rows, once no record arrived for this long")
	opsAddr := fs.String("ops-addr", env("INGEST_OPS_ADDR", "127.0.0.1:8081"), "address of /healthz, /readyz and /metrics (FIRMBRIDGE_INGEST_OPS_ADDR)")
	digestEvery := fs.String("audit-digest-interval", env("AUDIT_DIGEST_INTERVAL", "10s"), "how often the audit sealer signs a digest of each chain (FIRMBRIDGE_AUDIT_DIGEST_INTERVAL)")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	digestInterval, err := time.ParseDuration(*digestEvery)
	if err != nil || digestInterval < 100*time.Millisecond {
		return fmt.Errorf("audit digest interval %q: want a duration of at least 100ms, e.g. 10s", *digestEvery)
	}
	auditKey, err := api.LoadSigningKey(cfg.auditKeyFile())
	if err != nil {
		return fmt.Errorf("audit sealer: %w (create the audit key with `firmbridge keygen --audit`)", err)
	}
	logger := newLogger(stderr, cfg.LogLevel)
	store, err := openAndMigrate(ctx, cfg)
	if err != nil {
		// SIGTERM during start-up is a clean stop too: nothing was fetched yet.
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			logger.Info("stopped during start-up")
			return nil
		}
		return err
	}
	defer store.Close()
	store.Logger = logger
	registry, err := all.Registry()
	if err != nil {
		return err
	}
	kcfg := cfg.kafka()
	brokers := kcfg.Brokers
	promRegistry := prometheus.NewRegistry()
	promRegistry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(promRegistry)
	ops, err := serveOps(ctx, *opsAddr, promRegistry, func(ctx context.Context) error {
		if err := store.Conn().Ping(ctx); err != nil {
			return fmt.Errorf("clickhouse: %w", err)
		}
		return kafka.Ping(ctx, cfg.kafka())
	})
	if err != nil {
		return err
	}
	defer ops.Close()
	logger.Info("ingest health and metrics", "addr", "http://"+*opsAddr)
	var pipelines []*ingest.Pipeline
	for _, d := range firmbridge.Domains {
		pipelines = append(pipelines, &ingest.Pipeline{
			Brokers: brokers, Topic: kcfg.Topic(firmbridge.RawTopic(d)), GroupID: *group + "." + d,
			DeadLetterTopic: kcfg.Topic(firmbridge.DeadLetterTopic(d)), Decode: ingest.EnvelopeDecoder(registry), Sink: store,
			Workers: *workers, BatchRows: *batchRows, BatchWait: *batchWait, IdleWait: *batchIdle, Logger: logger, Metrics: metrics,
		})
	}
	// Access events are sealed into hash chains (audit_events), not copied
	// plainly; the sealer's group is its own, since it resumes from its
	// checkpoint in ClickHouse and not from committed offsets.
	sealer := &ingest.Sealer{
		Brokers: brokers, Topic: kcfg.Topic(firmbridge.TopicAuditAccess), GroupID: *group + ".audit-sealer",
		DeadLetterTopic: kcfg.Topic(firmbridge.DeadLetterTopic("audit")), Store: schema.AuditStore{Store: store},
		SigningKey: auditKey.Private, KeyID: auditKey.ID, DigestInterval: digestInterval,
		Logger: logger, Metrics: ingest.NewSealerMetrics(promRegistry),
	}
	runners := []func(context.Context) error{sealer.Run}
	for _, p := range pipelines {
		runners = append(runners, p.Run)
	}
	// One pipeline failing stops them all, so the process exits and its
	// supervisor restarts it rather than running half an ingest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, run := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serveOps serves liveness, readiness and Prometheus metrics for a worker
// process until ctx ends or the returned server is closed.
// ingestGCPercent is the garbage collector's target for ingest processes.
// Normalizing allocates many short-lived values per record, and at the
// default of 100 the collector took about a tenth of ingest's CPU; a batch
// in flight and one filling are the live heap, so tripling the headroom
// costs tens of MB. GOGC in the environment still wins.
const ingestGCPercent = 300

func tuneGCForIngest() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(ingestGCPercent)
	}
}

func serveOps(ctx context.Context, addr string, reg *prometheus.Registry, ready func(context.Context) error) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":503,"code":"not_ready","title":"Service Unavailable","detail":%q}`+"\n", "a dependency does not answer")
			return
		}
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for health and metrics: %w (set --ops-addr or FIRMBRIDGE_INGEST_OPS_ADDR)", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return srv, nil
}

// runReplayDLQ is `firmbridge ingest replay-dlq --source S`: after a
// connector fix, send the source's dead letters back to its raw topic.
func runReplayDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("ingest replay-dlq", stderr)
	source := fs.String("source", "", "the source whose dead letters to replay, e.g. tax.vat_return")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed; send nothing and keep no progress")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	domain := firmbridge.SourceDomain(*source)
	if domain == "" {
		return fmt.Errorf("replay-dlq: --source must name a source such as tax.vat_return, got %q", *source)
	}
	kcfg := cfg.kafka()
	replay := &ingest.Replay{Brokers: kcfg.Brokers, Source: *source, DryRun: *dryRun,
		DeadLetterTopic: kcfg.Topic(firmbridge.DeadLetterTopic(domain)), RawTopic: kcfg.Topic(firmbridge.RawTopic(domain)),
		Logger: newLogger(stderr, cfg.LogLevel)}
	st, err := replay.Run(ctx)
	if err != nil {
		return err
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s %d dead letters of %s to %s (read %d; %d of other sources; %d not envelopes)\n",
		verb, st.Replayed, *source, replay.RawTopic, st.Read, st.OtherSrc, st.Unreadable)
	return nil
}
