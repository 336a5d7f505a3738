package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("serve", stderr)
	sweepEvery := fs.String("consent-sweep-interval", env("CONSENT_SWEEP_INTERVAL", api.DefaultSweepInterval.String()),
		"how often consents past expiry are stored EXPIRED and unpublished consent events sent again (FIRMBRIDGE_CONSENT_SWEEP_INTERVAL)")
	cacheAge := fs.String("consent-cache-max-age", env("CONSENT_CACHE_MAX_AGE", api.DefaultConsentCacheMaxAge.String()),
		"longest a firm's consents are served from memory when no consent event names it; 0 turns the cache off (FIRMBRIDGE_CONSENT_CACHE_MAX_AGE)")
	digestAge := fs.String("audit-max-digest-age", env("AUDIT_MAX_DIGEST_AGE", "60s"),
		"firm data is refused (503 audit_stalled) while the newest signed audit digest is older than this; 0 turns the check off (FIRMBRIDGE_AUDIT_MAX_DIGEST_AGE)")
	auditKeys := fs.String("audit-public-keys", env("AUDIT_PUBLIC_KEYS", ""),
		"PEM files of the keys audit digests may be signed with, comma-separated; default the audit signing key (FIRMBRIDGE_AUDIT_PUBLIC_KEYS)")
	proxies := fs.String("trusted-proxies", env("TRUSTED_PROXIES", ""),
		"comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client; empty: the TCP peer is the client (FIRMBRIDGE_TRUSTED_PROXIES)")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	maxDigestAge, err := time.ParseDuration(*digestAge)
	if err != nil || maxDigestAge < 0 {
		return fmt.Errorf("audit max digest age %q: want a duration such as 60s, or 0 for no check", *digestAge)
	}
	if _, err := api.LoadOpenAPI(ctx); err != nil {
		return fmt.Errorf("the API description is broken: %w", err)
	}
	sweepInterval, err := time.ParseDuration(*sweepEvery)
	if err != nil || sweepInterval < time.Second {
		return fmt.Errorf("consent sweep interval %q: want a duration of at least 1s, e.g. 30s", *sweepEvery)
	}
	cacheMaxAge, err := time.ParseDuration(*cacheAge)
	if err != nil || cacheMaxAge < 0 {
		return fmt.Errorf("consent cache max age %q: want a duration such as 10s, or 0 for no cache", *cacheAge)
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
	registry, err := all.Registry()
	if err != nil {
		return err
	}
	srv, promRegistry, closeKafka, err := newAPIServer(cfg, store, key, registry, logger)
	if err != nil {
		return err
	}
	defer closeKafka()
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			srv.TrustedProxies = append(srv.TrustedProxies, p)
		}
	}
	if srv.AuditKeys, err = loadAuditKeys(*auditKeys, cfg); err != nil {
		logger.Warn("audit digests cannot be verified by this API (GET /v1/audit/verify answers 503)", "err", err)
	}
	if maxDigestAge > 0 {
		// Fail closed like X-Road: no firm data while the access log is
		// not being sealed and signed by firmbridge ingest.
		srv.AuditGuard = &api.AuditGuard{Clock: schema.AuditStore{Store: store}, MaxAge: maxDigestAge}
	}
	if cacheMaxAge > 0 {
		stopWatch := cacheConsents(ctx, cfg, srv, cacheMaxAge, promRegistry, logger)
		defer stopWatch()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --addr or FIRMBRIDGE_HTTP_ADDR)", cfg.HTTPAddr, err)
	}
	httpServer := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("API listening", "addr", "http://"+ln.Addr().String())
	// Every instance sweeps; expiries are deterministic, so they agree.
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); srv.RunConsentSweeper(sweepCtx, sweepInterval) }()
	defer func() { stopSweep(); <-sweepDone }()
	errc := make(chan error, 1)
	go func() { errc <- httpServer.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down API")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newAPIServer builds the API as serve runs it: on store and cfg's Kafka
// topics, tokens signed with key, metrics in a registry of its own, the
// configured authentication and limits. serve adds its listener, audit
// guard and consent cache; bench api measures this very server. closeKafka
// releases its Kafka writers.
func newAPIServer(cfg *Config, store *schema.Store, key *api.SigningKey, registry *connectors.Registry, logger *slog.Logger) (
	srv *api.Server, reg *prometheus.Registry, closeKafka func(), err error) {
	kcfg := cfg.kafka()
	audit := kafka.NewAuditLog(kcfg, kcfg.Topic(firmbridge.TopicAuditAccess))
	raw := kafka.NewRawPublisher(kcfg)
	consentEvents := kafka.NewConsentEvents(kcfg, kcfg.Topic(firmbridge.TopicConsentEvents))
	closeKafka = func() {
		consentEvents.Close()
		raw.Close()
		audit.Close()
	}
	reg = prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv = &api.Server{
		Metrics:    api.NewMetrics(reg),
		Registry:   reg,
		Tokens:     &api.Tokens{Issuer: cfg.Issuer, Audience: cfg.Audience, Signing: key, Leeway: 30 * time.Second},
		Consents:   schema.ConsentStore{Store: store},
		Profiles:   schema.ProfileReader{Store: store},
		Audit:      audit,
		Raw:        raw,
		Connectors: registry,
		Logger:     logger,
		Ready: func(ctx context.Context) error {
			if err := store.Conn().Ping(ctx); err != nil {
				return fmt.Errorf("clickhouse: %w", err)
			}
			return kafka.Ping(ctx, kcfg)
		},
	}
	// Consent changes are published before they are answered (fail
	// closed); receipts are the outbox the sweeper re-publishes from.
	srv.ConsentEvents, srv.Receipts = consentEvents, schema.ConsentStore{Store: store}
	if err := configureAuth(cfg, srv, store, reg); err != nil {
		closeKafka()
		return nil, nil, nil, err
	}
	// Regulators' queries and chain verification.
	srv.AuditQueries, srv.AuditChains = schema.AuditQueries{Store: store}, schema.AuditStore{Store: store}
	return srv, reg, closeKafka, nil
}

// cacheConsents puts a ConsentCache in front of the server's consent store
// and follows consent.events.v1 to keep it fresh; the returned func stops
// following. Until the watch has caught up, and whenever it falls behind,
// the cache reads through.
func cacheConsents(ctx context.Context, cfg *Config, srv *api.Server, maxAge time.Duration, reg *prometheus.Registry, logger *slog.Logger) func() {
	cache := &api.ConsentCache{Store: srv.Consents, MaxAge: maxAge}
	srv.Consents = cache
	stats := cache.Stats()
	for result, n := range map[string]*atomic.Int64{"hit": &stats.Hits, "miss": &stats.Misses, "bypass": &stats.Bypassed} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "firmbridge_api_consent_cache_reads_total",
			Help:        "Consent reads by the API's cache: hit, miss (loaded from ClickHouse) or bypass (the event watch is not caught up).",
			ConstLabels: prometheus.Labels{"result": result}}, func() float64 { return float64(n.Load()) }))
	}
	watch := &kafka.ConsentWatch{Config: cfg.kafka(), Topic: cfg.kafka().Topic(firmbridge.TopicConsentEvents),
		OnEvent: cache.Invalidate, OnCaughtUp: cache.CaughtUp, Logger: logger}
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A topic without a leader yet (a fresh cluster) fails the start:
		// try again; meanwhile every consent check reads ClickHouse.
		for watchCtx.Err() == nil {
			err := watch.Run(watchCtx)
			if err == nil || watchCtx.Err() != nil {
				return
			}
			logger.Warn("consent events not followed yet; consent checks read ClickHouse", "err", err)
			select {
			case <-watchCtx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	return func() { stop(); <-done }
}

// openAndMigrate connects to ClickHouse, applies migrations and makes sure
// the Kafka topics exist: every long-running command starts with it.
func openAndMigrate(ctx context.Context, cfg *Config) (*schema.Store, error) {
	store, err := schema.Open(ctx, cfg.schema())
	if err != nil {
		return nil, err
	}
	if _, err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, err
	}
	if err := kafka.EnsureTopics(ctx, cfg.kafka(), cfg.kafka().PlatformTopics()...); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("migrate", stderr)
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	store, err := schema.Open(ctx, cfg.schema())
	if err != nil {
		return err
	}
	defer store.Close()
	store.Logger = newLogger(stderr, cfg.LogLevel)
	ran, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, cfg.kafka(), cfg.kafka().PlatformTopics()...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrations applied now: %v; database %s is up to date; topics ready\n", ran, cfg.ClickHouseDB)
	return nil
}
