package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// benchAPIFlags are the settings of bench api.
type benchAPIFlags struct {
	firms, months       int
	seed                int64
	requests, warmup    int
	queryProfile        int
	concurrency         int
	duration            time.Duration
	batchRows           int
	loadTimeout, settle time.Duration
	quietLoad           float64
	reuse               string
	consentCache        time.Duration
	keep, noAppend      bool
	output, cpuProfile  string
}

func runBenchAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("bench api", stderr)
	var o benchAPIFlags
	fs.IntVar(&o.firms, "firms", 100_000, "firms to generate and load")
	fs.IntVar(&o.months, "months", 24, "months of provider history per firm (about 100 records and 125 rows per firm over 24 months)")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed, also of the order in which firms are asked for")
	fs.IntVar(&o.requests, "requests", 20000, "profiles each measure reads at most")
	fs.IntVar(&o.warmup, "warmup", 1000, "profiles read before each measure, not counted (other firms than the measured ones' order)")
	fs.IntVar(&o.queryProfile, "query-profile", 200, "profiles read one at a time with log_queries on, after the measures, to summarize each query from system.query_log (0: none)")
	fs.IntVar(&o.concurrency, "concurrency", 8, "concurrent clients")
	fs.DurationVar(&o.duration, "duration", time.Minute, "the longest any one measure may take; it stops at --requests or here, whichever comes first")
	fs.IntVar(&o.batchRows, "batch-rows", 200_000, "rows per insert while loading")
	fs.DurationVar(&o.loadTimeout, "load-timeout", 20*time.Minute, "the longest loading may take")
	fs.DurationVar(&o.settle, "settle", 3*time.Minute, "after loading, wait at most this long for ClickHouse's merges to end and the load average to fall below --quiet-load")
	fs.Float64Var(&o.quietLoad, "quiet-load", 2, "1-minute load average to wait for before measuring (0: do not wait)")
	fs.StringVar(&o.reuse, "reuse", "", "measure on this existing bench database (kept by an earlier run with --keep) instead of loading a new one; it is migrated and never dropped")
	fs.DurationVar(&o.consentCache, "consent-cache-max-age", api.DefaultConsentCacheMaxAge, "the API's consent cache, as serve's flag of that name (0: off)")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch database and topics")
	fs.StringVar(&o.output, "output", "docs/BENCHMARKS.md", "file the results are appended to")
	fs.BoolVar(&o.noAppend, "no-append", false, "print the results only")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the API measure to this file")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench api: unexpected arguments %q", fs.Args())
	}
	if o.firms <= 0 || o.months <= 0 || o.requests <= 0 || o.concurrency <= 0 || o.duration <= 0 || o.batchRows <= 0 || o.warmup < 0 {
		return errors.New("bench api: --firms, --months, --requests, --concurrency, --duration and --batch-rows must be positive")
	}
	registry, err := all.Registry()
	if err != nil {
		return err
	}
	level := cfg.LogLevel
	if level == "info" {
		level = "warn" // a line per request would break the progress bars
	}
	logger := newLogger(stderr, level)
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	now := time.Now().UTC()
	// History ends with last month, as bench ingest's does.
	end := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)

	// 1. Scratch database and topics, removed at the end.
	name := now.Format("20060102_150405") + "_" + benchSuffix()
	db := "bench_api_" + name
	if o.reuse != "" {
		db = o.reuse
	}
	cfg.TopicPrefix = "bench." + name + "." // the consent cache's watch reads cfg
	kcfg := cfg.kafka()
	auditTopic, consentTopic := kcfg.Topic(firmbridge.TopicAuditAccess), kcfg.Topic(firmbridge.TopicConsentEvents)
	var cleanups []func(context.Context) error
	defer func() {
		if o.keep {
			say("kept database %s and topics %s*; measure again with --reuse %s", db, kcfg.TopicPrefix, db)
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, f := range slices.Backward(cleanups) {
			if err := f(cctx); err != nil {
				say("clean up: %v", err)
			}
		}
	}()
	sc := cfg.schema()
	sc.Database = db
	store, err := schema.Open(ctx, sc)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func(ctx context.Context) error {
		defer store.Close()
		if o.reuse != "" {
			return nil
		}
		return store.DropDatabase(ctx)
	})
	store.Logger = logger
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	cleanups = append(cleanups, func(ctx context.Context) error { return kafka.DeleteTopics(ctx, kcfg, auditTopic, consentTopic) })
	if err := kafka.EnsureTopics(ctx, kcfg, auditTopic, consentTopic); err != nil {
		return err
	}
	say("database %s, topics %s and %s", db, auditTopic, consentTopic)

	// 2. Data and consents.
	var (
		load     *benchLoad
		consents benchConsents
		usccs    []string
		floor    = end.AddDate(-1, 0, 0)
	)
	if o.reuse == "" {
		genStart := time.Now()
		firms := benchAPIFirms(o.seed, o.firms)
		for _, f := range firms {
			usccs = append(usccs, f.USCC)
		}
		say("%d firms in %s; loading %d months of history each (synth → connectors → InsertRows, %d generators, batches of %d rows)",
			len(firms), time.Since(genStart).Round(time.Millisecond), o.months, runtime.GOMAXPROCS(0), o.batchRows)
		bar := newBenchAPIBar(stderr, len(firms), "load", "firms")
		if load, err = loadBenchData(ctx, store, registry, o.seed, firms, o.months, end, o.batchRows, o.loadTimeout, bar); err != nil {
			return err
		}
		say("loaded %d records, %d rows in %s (%.0f rows/s)", load.records, load.rows, load.took.Round(time.Millisecond), float64(load.rows)/load.took.Seconds())
		if consents, err = grantBenchConsents(ctx, store, firms, floor); err != nil {
			return err
		}
	} else if usccs, err = benchFirmsOf(ctx, store); err != nil {
		return err
	} else {
		say("reusing %s: %d firms", db, len(usccs))
	}
	settleStart := time.Now()
	waitForMerges(ctx, store, o.settle)
	merged := time.Since(settleStart)
	for o.quietLoad > 0 && time.Since(settleStart) < o.settle && load1() >= o.quietLoad {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	sizes, err := benchTableSizes(ctx, store)
	if err != nil {
		return err
	}
	say("merges settled after %s, load average %s: %s", merged.Round(time.Second), loadAverage(), sizes)

	// 3. The API as serve builds it, on a loopback listener, rate limits off.
	key, err := api.GenerateSigningKey()
	if err != nil {
		return err
	}
	for _, spec := range cfg.RateLimits {
		*spec = "off"
	}
	srv, promRegistry, closeKafka, err := newAPIServer(cfg, store, key, registry, logger)
	if err != nil {
		return err
	}
	defer closeKafka()
	// No firmbridge ingest seals this run's access events: the guard runs
	// on a clock that says the newest digest is fresh.
	srv.AuditGuard = &api.AuditGuard{Clock: freshDigests{}, MaxAge: time.Minute}
	if o.consentCache > 0 {
		stopWatch := cacheConsents(ctx, cfg, srv, o.consentCache, promRegistry, logger)
		defer stopWatch()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench: listen: %w", err)
	}
	httpServer := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(sctx)
	}()
	base := "http://" + ln.Addr().String()
	token, err := srv.Tokens.Issue("analyst@"+benchBank, firmbridge.RoleBank, benchBank, time.Hour)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 2 * o.concurrency, MaxIdleConnsPerHost: 2 * o.concurrency, DisableCompression: true, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	purpose := firmbridge.PurposeCreditAssessment
	apiCall := httpProfile(client, base, token, purpose)
	reader, consentStore := schema.ProfileReader{Store: store}, schema.ConsentStore{Store: store}
	var consentNanos, readNanos atomic.Int64
	directCall := func(ctx context.Context, uscc string) (int64, error) {
		t0 := time.Now()
		cs, err := consentStore.ConsentsForGrantee(ctx, benchBank, uscc)
		if err != nil {
			return 0, err
		}
		t1 := time.Now()
		consentNanos.Add(int64(t1.Sub(t0)))
		var c *firmbridge.Consent
		for _, x := range cs {
			if x.Purpose == purpose && x.EffectiveStatus(t1) == firmbridge.ConsentActive {
				c = x
				break
			}
		}
		if c == nil {
			return 0, fmt.Errorf("no active consent of %s to %s", uscc, benchBank)
		}
		read, err := reader.ReadProfiles(ctx, []firmbridge.ProfileRequest{{USCC: uscc, Scopes: c.Scopes, DataFrom: firmbridge.DataFloor(c.DataFrom)}})
		readNanos.Add(int64(time.Since(t1)))
		if err != nil {
			return 0, err
		}
		if read[uscc] == nil {
			return 0, fmt.Errorf("no profile of %s", uscc)
		}
		return 0, nil
	}
	sample := &firmbridge.AccessEvent{Subject: "analyst@" + benchBank, Role: firmbridge.RoleBank, Org: benchBank, Purpose: purpose,
		Decision: firmbridge.DecisionAllow, Status: http.StatusOK, Method: http.MethodGet, ClientAddr: "127.0.0.1"}
	var auditSeq atomic.Int64
	auditCall := func(ctx context.Context, uscc string) (int64, error) {
		ev := *sample
		ev.EventID = "bench-" + name + "-" + strconv.FormatInt(auditSeq.Add(1), 10)
		ev.RequestID, ev.USCC, ev.OccurredAt = ev.EventID, uscc, time.Now().UTC()
		ev.Path = "/v1/firms/" + uscc + "/profile"
		return 0, srv.Audit.Record(ctx, &ev)
	}

	// 4. Measure: the same firms, in the same order, for every measure.
	meter := newCPUMeter(cfg.ClickHouseAddr, kcfg.Brokers)
	order := benchOrder(o.seed, usccs, o.requests)
	warm := benchOrder(o.seed+1, usccs, o.warmup)
	measure := func(name string, call func(context.Context, string) (int64, error), before func()) (*latencyRun, error) {
		if o.warmup > 0 {
			w := runClients(ctx, name, o.concurrency, warm, o.duration, nil, call)
			if w.firstErr != nil && int(w.errors) == len(w.lat) {
				return nil, fmt.Errorf("bench: %s: warm-up: every request failed: %w", name, w.firstErr)
			}
		}
		if before != nil {
			before()
		}
		runtime.GC()
		say("%s", name)
		bar := newBenchAPIBar(stderr, len(order), "measure", "profiles")
		cpu0 := meter.sample()
		r := runClients(ctx, name, o.concurrency, order, o.duration, bar, call)
		r.cpu = meter.perProfile(cpu0, meter.sample(), len(r.lat))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if r.firstErr != nil {
			say("%s: %d of %d requests failed, first: %v", name, r.errors, len(r.lat), r.firstErr)
		}
		return r, nil
	}
	loadBefore := loadAverage()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
	}
	apiRun, err := measure("API: GET /v1/firms/{uscc}/profile over HTTP (token, consent, profile reads, access event acks=all)", apiCall, nil)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	baseRun, err := measure("baseline: the schema reads called directly (ConsentsForGrantee + ReadProfiles)", directCall, func() {
		consentNanos.Store(0)
		readNanos.Store(0)
	})
	if err != nil {
		return err
	}
	baseRun.baseline = true
	consentMean, readMean := time.Duration(0), time.Duration(0)
	if n := int64(len(baseRun.lat)); n > 0 {
		consentMean, readMean = time.Duration(consentNanos.Load()/n), time.Duration(readNanos.Load()/n)
	}
	auditRun, err := measure("context: the access event alone (kafka-go, acks=all)", auditCall, nil)
	if err != nil {
		return err
	}
	auditRun.info = true
	loadAfter := loadAverage()
	var queries string
	if o.queryProfile > 0 {
		say("query profile: %d profiles one at a time, log_queries on", o.queryProfile)
		if queries, err = profileQueries(ctx, store, directCall, benchOrder(o.seed+2, usccs, o.queryProfile)); err != nil {
			return err
		}
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("bench: serve: %w", err)
	default:
	}

	// 5. Report.
	var chVersion string
	if err := store.Conn().QueryRow(ctx, "SELECT version()").Scan(&chVersion); err != nil {
		chVersion = "unknown"
	}
	runs := []*latencyRun{apiRun, baseRun, auditRun}
	table := benchAPITable(runs)
	var notes strings.Builder
	if load != nil {
		fmt.Fprintf(&notes, "- data: %d firms (seed %d), %d months of history each ending %s: %d records, %d rows loaded in %s (%.0f rows/s; synth → connectors registry → schema.Store.InsertRows, %d generating goroutines, %d inserts)\n",
			len(usccs), o.seed, o.months, end.AddDate(0, -1, 0).Format("2006-01"), load.records, load.rows, load.took.Round(time.Second), float64(load.rows)/load.took.Seconds(), runtime.GOMAXPROCS(0), load.inserts)
		fmt.Fprintf(&notes, "- rows by table: %s; %d patents dropped whose application number an earlier chunk of firms had drawn\n", byTable(load.byTable), load.droppedPatent)
		fmt.Fprintf(&notes, "- consents: %d to %s (every scope, credit_assessment; %d of them with data_from %s), %d to %s (tax, loan_monitoring)\n",
			consents.bank, benchBank, consents.withFloor, consents.floor.Format(time.DateOnly), consents.other, benchOtherBank)
	} else {
		fmt.Fprintf(&notes, "- data: database %s reused, %d firms\n", db, len(usccs))
	}
	fmt.Fprintf(&notes, "- storage after merges settled (%s): %s\n", merged.Round(time.Second), sizes)
	var meanBytes int64
	if len(apiRun.lat) > 0 {
		meanBytes = apiRun.bytes / int64(len(apiRun.lat))
	}
	fmt.Fprintf(&notes, "- clients: %d concurrent, each request a firm drawn uniformly from all %d (the same %d firms in the same order for every measure), %d warm-up requests on other draws first; mean profile %.1f KB\n",
		o.concurrency, len(usccs), len(order), o.warmup, float64(meanBytes)/1000)
	cache := "off"
	if o.consentCache > 0 {
		cache = "max age " + o.consentCache.String()
	}
	fmt.Fprintf(&notes, "- API: api.Server as serve builds it (EdDSA token, role matrix, metrics, consent lookup, ReadProfiles, access event on %s with acks=all before the answer), consent cache %s, rate limits off, log level %s, audit guard on a clock that is always fresh (no sealer runs); baseline time split: consent lookup %.1f ms, ReadProfiles %.1f ms on average\n",
		auditTopic, cache, level, float64(consentMean)/1e6, float64(readMean)/1e6)
	if queries != "" {
		fmt.Fprintf(&notes, "- ClickHouse per query (system.query_log, %d profiles read one at a time through the schema after the measures): %s\n", o.queryProfile, queries)
	}
	sorted := slices.Sorted(slices.Values(apiRun.lat))
	p99 := quantile(sorted, 0.99)
	verdict := "met"
	if p99 > 25*time.Millisecond || apiRun.perSecond() < 1000 || apiRun.errors > 0 {
		verdict = "not met"
	}
	fmt.Fprintf(&notes, "- target p99 ≤ 25 ms and ≥ 1,000 profiles/s: %s (p99 %.1f ms, %.0f profiles/s)\n", verdict, float64(p99)/1e6, apiRun.perSecond())
	fmt.Fprintf(&notes, "- load average before %s, after %s\n", loadBefore, loadAfter)
	machine := benchMachine(chVersion)
	fmt.Fprintf(stdout, "\nbench api: %d firms, %d profiles per measure\n\n%s\n%s%s", len(usccs), len(order), table, notes.String(), machine)
	if o.noAppend {
		return nil
	}
	cmdline := strings.TrimSpace("firmbridge bench api " + strings.Join(args, " "))
	if err := appendBenchmark(o.output, "api", now, cmdline, table, notes.String(), machine); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "appended to %s\n", o.output)
	return nil
}

// freshDigests is an audit digest clock whose newest digest is always now.
type freshDigests struct{}

func (freshDigests) StalestDigestAt(context.Context) (time.Time, bool, error) {
	return time.Now(), true, nil
}

func newBenchAPIBar(w io.Writer, n int, what, unit string) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-9s", what)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// load1 is the 1-minute load average, 0 when unknown.
func load1() float64 {
	f, _, _ := strings.Cut(loadAverage(), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

func byTable(m map[string]int64) string {
	tables := slices.Sorted(func(yield func(string) bool) {
		for t := range m {
			if !yield(t) {
				return
			}
		}
	})
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d", t, m[t])
	}
	return strings.Join(parts, ", ")
}
