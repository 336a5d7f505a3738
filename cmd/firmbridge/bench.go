package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

const benchUsage = `Usage: firmbridge bench ingest [flags]
       firmbridge bench api [--firms 100000] [--months N] [--requests N] [--concurrency C] [--duration D]
       firmbridge bench audit [--events 10000000] [--banks 300] [--firms 100000] [--years 3] [--runs 20]

Generates raw records with connectors/synth, publishes them to scratch topics,
and measures in one run: the ingest pipelines end to end into a scratch
ClickHouse database, a bare kafka-go consumer of the same topics, and bare
clickhouse-go inserts of the same rows. Prints a table and appends it to
docs/BENCHMARKS.md. Run with -h after "ingest" for the flags.
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ingest" {
		return runBenchIngest(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "api" {
		return runBenchAPI(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "audit" {
		return runBenchAudit(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, benchUsage)
	switch {
	case len(args) == 0:
		return errors.New("bench: name a benchmark: bench ingest, bench api or bench audit")
	case args[0] == "-h" || args[0] == "--help":
		return flag.ErrHelp
	}
	return fmt.Errorf("bench: unknown benchmark %q (there are: ingest, api, audit)", args[0])
}

// benchFlags are the settings of bench ingest.
type benchFlags struct {
	records, firms, months int
	sources                string
	seed                   int64
	workers, batchRows     int
	batchWait, batchIdle   time.Duration
	partitions             int
	keep, noAppend         bool
	output, cpuProfile     string
	timeout                time.Duration
}

func runBenchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	tuneGCForIngest() // measure ingest as `firmbridge ingest` runs
	fs, cfg := newFlags("bench ingest", stderr)
	var o benchFlags
	fs.IntVar(&o.records, "records", 1_000_000, "raw records to generate and ingest")
	fs.IntVar(&o.firms, "firms", 0, "firms the records are about (0: as many as --months of history need, about 100 records each over 24 months)")
	fs.IntVar(&o.months, "months", 24, "months of history generated per firm")
	fs.StringVar(&o.sources, "sources", "", "comma-separated sources to generate (empty: every source, in the mix synth generates)")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed")
	fs.IntVar(&o.workers, "workers", 1, "consumers per topic, for the pipelines and the bare consumer; inserters per domain for the bare insert")
	fs.IntVar(&o.batchRows, "batch-rows", 50000, "rows per batch, for the pipelines and the bare insert")
	fs.DurationVar(&o.batchWait, "batch-wait", time.Second, "the pipelines' batch window")
	fs.DurationVar(&o.batchIdle, "batch-idle", 250*time.Millisecond, "the pipelines store a batch of at least a tenth of --batch-rows once no record arrived for this long")
	fs.IntVar(&o.partitions, "partitions", 4, "partitions per scratch topic")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch topics, consumer groups and databases")
	fs.StringVar(&o.output, "output", "docs/BENCHMARKS.md", "file the results are appended to")
	fs.BoolVar(&o.noAppend, "no-append", false, "print the results only")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the end-to-end measure to this file")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "the longest any one measure may take")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench ingest: unexpected arguments %q", fs.Args())
	}
	if o.records <= 0 || o.months <= 0 || o.workers <= 0 || o.batchRows <= 0 || o.partitions <= 0 || o.firms < 0 {
		return errors.New("bench ingest: --records, --months, --workers, --batch-rows and --partitions must be positive")
	}
	registry, err := all.Registry()
	if err != nil {
		return err
	}
	var sources []string
	for _, s := range strings.Split(o.sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(registry.Sources(), s) {
			return fmt.Errorf("bench ingest: unknown source %q (known: %s)", s, strings.Join(registry.Sources(), ", "))
		}
		sources = append(sources, s)
	}
	level := cfg.LogLevel
	if level == "info" {
		level = "warn" // the pipelines' start and stop lines would break the progress bars
	}
	logger := newLogger(stderr, level)
	loadBefore := loadAverage()
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }

	// 1. The records, encoded once. History ends with last month, so that the
	// records stay the same all month and no period lies in the future.
	now := time.Now().UTC()
	end := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	bar := newBenchBar(stderr, o.records, "generate")
	genStart := time.Now()
	corpus, err := generateCorpus(o.seed, o.records, o.firms, o.months, sources, end, bar)
	if err != nil {
		return err
	}
	_ = bar.Finish()
	mix := corpus.mix()
	say("%d records about %d firms (%.0f MB of envelopes) in %s; mix: %s", len(corpus.msgs), corpus.firms, float64(corpus.bytes)/1e6, time.Since(genStart).Round(time.Millisecond), mix)

	// 2. Scratch topics and databases, removed at the end.
	name := now.Format("20060102_150405") + "_" + benchSuffix()
	kcfg := cfg.kafka()
	kcfg.TopicPrefix = "bench." + name + "."
	kcfg.Partitions = o.partitions
	say("scratch topics and consumer groups %s*, databases bench_%s and bench_%s_bare", kcfg.TopicPrefix, name, name)
	var cleanups []func(context.Context) error
	defer func() {
		if o.keep {
			say("kept scratch topics %s*, consumer groups %s* and databases bench_%s, bench_%s_bare", kcfg.TopicPrefix, kcfg.TopicPrefix, name, name)
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
	openScratch := func(db string) (*schema.Store, error) {
		sc := cfg.schema()
		sc.Database = db
		store, err := schema.Open(ctx, sc)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func(ctx context.Context) error {
			defer store.Close()
			return store.DropDatabase(ctx)
		})
		store.Logger = logger
		if _, err := store.Migrate(ctx); err != nil {
			return nil, err
		}
		return store, nil
	}
	store, err := openScratch("bench_" + name)
	if err != nil {
		return err
	}
	bare, err := openScratch("bench_" + name + "_bare")
	if err != nil {
		return err
	}
	topics := &benchTopics{raw: map[string]string{}, dlq: map[string]string{}}
	var topicNames []string
	for _, d := range firmbridge.Domains {
		if corpus.byDomain[d] > 0 {
			topics.domains = append(topics.domains, d)
			topics.raw[d], topics.dlq[d] = kcfg.Topic(firmbridge.RawTopic(d)), kcfg.Topic(firmbridge.DeadLetterTopic(d))
			topicNames = append(topicNames, topics.raw[d], topics.dlq[d])
		}
	}
	cleanups = append(cleanups, func(ctx context.Context) error { return kafka.DeleteTopics(ctx, kcfg, topicNames...) })
	if err := kafka.EnsureTopics(ctx, kcfg, topicNames...); err != nil {
		return err
	}
	client := &kafkago.Client{Addr: kafkago.TCP(kcfg.Brokers...), Timeout: 10 * time.Second}
	bareGroup, ingestGroup := kcfg.TopicPrefix+"consume.", kcfg.TopicPrefix+"ingest."
	cleanups = append(cleanups, func(ctx context.Context) error {
		var groups []string
		for _, d := range topics.domains {
			groups = append(groups, bareGroup+d, ingestGroup+d)
		}
		resp, err := client.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: groups})
		if err != nil {
			return fmt.Errorf("delete consumer groups: %w", err)
		}
		var errs []error
		for g, err := range resp.Errors {
			if err != nil && !errors.Is(err, kafkago.GroupIdNotFound) {
				errs = append(errs, fmt.Errorf("delete consumer group %s: %w", g, err))
			}
		}
		return errors.Join(errs...)
	})

	// 3. Publish.
	bar = newBenchBar(stderr, len(corpus.msgs), "produce")
	produced, err := produceCorpus(ctx, kcfg, topics, corpus, bar)
	if err != nil {
		return err
	}
	if err := endOffsets(ctx, client, o.partitions, topics, corpus); err != nil {
		return err
	}
	total := int64(len(corpus.msgs))
	results := []benchResult{{measure: "produce (kafka-go writer, acks=all, LZ4)", records: total, duration: produced, info: true}}

	// 4. Normalize only: the CPU the connectors need, and what the pipelines
	// must end up storing.
	decode := ingest.EnvelopeDecoder(registry)
	meter := newCPUMeter(cfg.ClickHouseAddr, kcfg.Brokers)
	say("normalize only")
	before := meter.sample()
	norm, exp, err := normalizeCorpus(ctx, decode, corpus)
	if err != nil {
		return err
	}
	norm.cpu = meter.sample().sub(before)
	results = append(results, norm)
	var rejects int64
	for _, n := range exp.rejects {
		rejects += n
	}

	// 5. Baseline A: bare consume.
	waitForMerges(ctx, store, 30*time.Second)
	say("baseline A: bare kafka-go consume")
	before = meter.sample()
	consumed, consumeJoin, err := consumeBare(ctx, kcfg.Brokers, bareGroup, o.workers, topics, total, o.timeout)
	if err != nil {
		return err
	}
	consumed.cpu = meter.sample().sub(before)
	results = append(results, consumed)

	// 6. End to end, profiled on request.
	runtime.GC()
	say("end-to-end: ingest pipelines")
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
	before = meter.sample()
	e2e, err := runPipelines(ctx, kcfg.Brokers, ingestGroup, topics, exp, decode, store, o.workers, o.batchRows, o.batchWait, o.batchIdle, o.timeout, logger, client, total)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	e2e.result.cpu = meter.sample().sub(before)
	results = append(results, e2e.result)

	// 7. Baseline B: the same rows, normalized up front, inserted bare into a
	// fresh copy of the tables.
	say("merging the end-to-end tables (untimed)")
	merged, err := mergeAll(ctx, store)
	if err != nil {
		return err
	}
	say("baseline B: bare clickhouse-go insert (normalizing every batch first, untimed)")
	runtime.GC()
	inserted, err := insertBare(ctx, bare.Conn(), decode, corpus, o.batchRows, o.workers, meter)
	if err != nil {
		return err
	}
	results = append(results, inserted)
	loadAfter := loadAverage()

	// 8. Report.
	var chVersion string
	if err := store.Conn().QueryRow(ctx, "SELECT version()").Scan(&chVersion); err != nil {
		chVersion = "unknown"
	}
	table := benchTable(results)
	var notes strings.Builder
	fmt.Fprintf(&notes, "- records: %d about %d firms, %d months of history (seed %d), %.0f MB of envelopes; %d topics of %d partitions; workers %d, batches of %d rows or %s (or %s idle at %d rows or more)\n",
		total, corpus.firms, o.months, o.seed, float64(corpus.bytes)/1e6, len(topics.domains), o.partitions, o.workers, o.batchRows, o.batchWait, o.batchIdle, o.batchRows/10)
	fmt.Fprintf(&notes, "- mix: %s\n", mix)
	fmt.Fprintf(&notes, "- end-to-end: %d messages fetched, %d rows stored, %d dead letters (%d expected), %d batches, %d retries; committed offsets reach the end of every partition\n",
		e2e.messages, e2e.rows, e2e.dead, rejects, e2e.batches, e2e.retries)
	fmt.Fprintf(&notes, "- consumer group join (not counted): end-to-end %s, bare consume %s\n", e2e.join.Round(time.Millisecond), consumeJoin.Round(time.Millisecond))
	fmt.Fprintf(&notes, "- between the end-to-end measure and baseline B, OPTIMIZE … FINAL merged the end-to-end tables in %s (not counted), so that their merges did not run during baseline B; each insert measure pays for the merges its own parts start while it runs\n", merged.Round(100*time.Millisecond))
	fmt.Fprintf(&notes, "- CPU per 1,000 records, in ms of this process / the ClickHouse server / the Kafka broker (\"-\": not on this machine), while each measure ran (consumer group joins included): %s\n", cpuNotes(meter, results[1:]))
	fmt.Fprintf(&notes, "- load average before %s, after %s\n", loadBefore, loadAfter)
	machine := benchMachine(chVersion)

	fmt.Fprintf(stdout, "\nbench ingest: %d records, %d rows\n\n%s\n%s%s", total, e2e.rows, table, notes.String(), machine)
	if o.noAppend {
		return nil
	}
	cmdline := "firmbridge bench ingest " + strings.Join(args, " ")
	if err := appendBenchmark(o.output, "ingest", now, strings.TrimSpace(cmdline), table, notes.String(), machine); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "appended to %s\n", o.output)
	return nil
}

func newBenchBar(w io.Writer, n int, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-9s", what)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

func benchSuffix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// benchTable renders the results as a Markdown table, each rate compared
// with the slower of the two baselines.
func benchTable(results []benchResult) string {
	slowest := 0.0
	for _, r := range results {
		if r.baseline && (slowest == 0 || r.perSecond(r.records) < slowest) {
			slowest = r.perSecond(r.records)
		}
	}
	var b strings.Builder
	b.WriteString("| measure | records | rows | seconds | records/s | rows/s | vs slower baseline |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		rows, rowRate, ratio := "", "", ""
		if r.rows > 0 {
			rows, rowRate = fmt.Sprint(r.rows), fmt.Sprintf("%.0f", r.perSecond(r.rows))
		}
		if slowest > 0 {
			ratio = fmt.Sprintf("%.2f", r.perSecond(r.records)/slowest)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.0f | %s | %s |\n", r.measure, r.records, rows, r.duration.Seconds(), r.perSecond(r.records), rowRate, ratio)
	}
	return b.String()
}

// benchMachine describes the machine and the services, one line each.
func benchMachine(chVersion string) string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
	}
	return fmt.Sprintf("- machine: %d CPUs (%s), %s memory, %s/%s, Go %s\n- services on the same machine: ClickHouse %s, Kafka %s\n- code: %s\n",
		runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"), chVersion, kafkaVersion(), codeRevision())
}

// codeRevision names the commit the binary was built from when Go stamped
// it (not with -buildvcs=false), else the checkout the run started in.
func codeRevision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if modified == "true" {
				return rev[:min(len(rev), 12)] + " with local changes"
			}
			return rev[:min(len(rev), 12)]
		}
	}
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(status)) > 0 {
		rev += " with local changes"
	}
	return rev + " (the checkout the run started in; the binary is not stamped)"
}

// kafkaVersion reads the broker's version from the jars deploy/local
// fetched, when there are any; the protocol does not tell it.
func kafkaVersion() string {
	home := os.Getenv("FIRMBRIDGE_HOME")
	if home == "" {
		home = ".local"
	}
	jars, _ := filepath.Glob(filepath.Join(home, "kafka", "lib", "kafka-server-[0-9]*.jar"))
	if len(jars) == 0 {
		return "unknown"
	}
	v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(jars[0]), "kafka-server-"), ".jar")
	return v + " (deploy/local)"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

const benchmarksIntro = `# Benchmarks

Written by ` + "`firmbridge bench ingest|api|audit`" + `; docs/BENCHMARKS.md in the repository explains the method.
`

// cpuNotes lists the CPU each measure cost per 1,000 records.
func cpuNotes(meter cpuMeter, results []benchResult) string {
	var parts []string
	for _, r := range results {
		name, _, _ := strings.Cut(r.measure, " (")
		if !strings.HasPrefix(name, "baseline") {
			name, _, _ = strings.Cut(name, ":")
		}
		parts = append(parts, name+" "+meter.perThousand(r.cpu, r.records))
	}
	return strings.Join(parts, "; ")
}

// appendBenchmark adds one run of `bench kind` to the benchmarks file: in
// its section, above the line "<!-- end of bench KIND results -->", so runs
// of each kind stay together, newest last; at the end of the file when the
// section has no such line; in a new file when there is none.
func appendBenchmark(path, kind string, at time.Time, cmdline, table, notes, machine string) error {
	var entry bytes.Buffer
	fmt.Fprintf(&entry, "### %s: bench %s\n\n", at.Format("2006-01-02 15:04 MST"), kind)
	fmt.Fprintf(&entry, "`%s`\n\n", cmdline)
	entry.WriteString(machine)
	entry.WriteString("\n")
	entry.WriteString(table)
	entry.WriteString("\n")
	entry.WriteString(notes)
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = []byte(benchmarksIntro)
	case err != nil:
		return fmt.Errorf("bench: %w", err)
	}
	var out []byte
	marker := []byte(benchmarkMarker(kind))
	if i := bytes.Index(old, marker); i >= 0 {
		out = append(out, old[:i]...)
		out = append(out, bytes.TrimRight(entry.Bytes(), "\n")...)
		out = append(out, "\n\n"...)
		out = append(out, old[i:]...)
	} else {
		out = append(bytes.TrimRight(old, "\n"), "\n\n"...)
		out = append(out, entry.Bytes()...)
	}
	// Written beside the file and renamed over it, so an interrupted run
	// never leaves the results half written.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	return nil
}

// benchmarkMarker ends the list of runs of one kind in docs/BENCHMARKS.md.
func benchmarkMarker(kind string) string { return "<!-- end of bench " + kind + " results -->" }
