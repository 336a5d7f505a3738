package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/firmbridge/firmbridge/schema"
)

// benchAuditFlags are the settings of bench audit.
type benchAuditFlags struct {
	events, banks, firms, regulators int
	years, chains, block             int
	generators, inserters            int
	seed                             int64
	runs                             int
	queryTime, settle                time.Duration
	quietLoad                        float64
	reuse                            string
	keep, noAppend                   bool
	output                           string
}

// runBenchAudit is `firmbridge bench audit`: years of sealed access events
// in a scratch database, then the regulator's queries against baselines.
func runBenchAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("bench audit", stderr)
	var o benchAuditFlags
	fs.IntVar(&o.events, "events", 10_000_000, "sealed access events to generate")
	fs.IntVar(&o.banks, "banks", 300, "institutions (banks) the events are from; sizes follow a power law")
	fs.IntVar(&o.firms, "firms", 100_000, "firms the events are about")
	fs.IntVar(&o.regulators, "regulators", 4, "regulators using the audit routes")
	fs.IntVar(&o.years, "years", 3, "years of events, ending at the last full hour")
	fs.IntVar(&o.chains, "chains", 4, "hash chains (partitions of audit.access.v1)")
	fs.IntVar(&o.block, "block", 50_000, "events per insert (and per signed digest of each chain)")
	fs.IntVar(&o.generators, "generators", runtime.GOMAXPROCS(0), "goroutines generating events")
	fs.IntVar(&o.inserters, "inserters", 2, "concurrent inserts")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed, also of the query parameters")
	fs.IntVar(&o.runs, "runs", 20, "runs of each query type (each with other parameters), each followed by its baseline")
	fs.DurationVar(&o.queryTime, "query-time", 90*time.Second, "after 3 runs, a query type stops once it has taken this long")
	fs.DurationVar(&o.settle, "settle", 10*time.Minute, "after loading, wait at most this long for ClickHouse's merges to end and the load average to fall below --quiet-load")
	fs.Float64Var(&o.quietLoad, "quiet-load", 2, "1-minute load average to wait for before measuring (0: do not wait)")
	fs.StringVar(&o.reuse, "reuse", "", "measure this database, loaded by an earlier run with --keep and the same generator flags, instead of loading a new one")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch database")
	fs.StringVar(&o.output, "output", "docs/BENCHMARKS.md", "file the results are appended to")
	fs.BoolVar(&o.noAppend, "no-append", false, "print the results only")
	if err := cfg.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench audit: unexpected arguments %q", fs.Args())
	}
	if o.events <= 0 || o.banks <= 0 || o.firms <= 0 || o.regulators <= 0 || o.years <= 0 || o.chains <= 0 || o.block <= 0 ||
		o.generators <= 0 || o.inserters <= 0 || o.runs <= 0 {
		return errors.New("bench audit: --events, --banks, --firms, --regulators, --years, --chains, --block, --generators, --inserters and --runs must be positive")
	}
	level := cfg.LogLevel
	if level == "info" {
		level = "warn" // migration lines would break the progress bar
	}
	logger := newLogger(stderr, level)
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	now := time.Now().UTC()
	gen := auditBenchConfig{events: o.events, banks: o.banks, firms: o.firms, regulators: o.regulators, years: o.years, chains: o.chains,
		block: o.block, seed: o.seed, end: now.Truncate(time.Hour)}

	// 1. The scratch database.
	runID := now.Format("20060102_150405") + "_" + benchSuffix()
	db := "bench_audit_" + runID
	if o.reuse != "" {
		db = o.reuse
	}
	sc := cfg.schema()
	sc.Database = db
	store, err := schema.Open(ctx, sc)
	if err != nil {
		return err
	}
	defer func() {
		defer store.Close()
		switch {
		case o.reuse != "":
		case o.keep:
			say("kept database %s; measure again with --reuse %s and the same generator flags", db, db)
		default:
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := store.DropDatabase(cctx); err != nil {
				say("clean up: %v", err)
			}
		}
	}()
	store.Logger = logger
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}

	// 2. The model, and the data unless reused.
	modelStart := time.Now()
	var have uint64
	if o.reuse != "" {
		var newest time.Time
		if err := store.Conn().QueryRow(ctx, "SELECT count(), max(occurred_at) FROM audit_events").Scan(&have, &newest); err != nil {
			return fmt.Errorf("bench audit: %w", err)
		}
		if have != uint64(o.events) {
			return fmt.Errorf("bench audit: %s holds %d events, not --events %d", db, have, o.events)
		}
		gen.end = newest.UTC().Truncate(time.Hour).Add(time.Hour)
	}
	m := newAuditBenchModel(gen)
	say("database %s; model: %d banks, %d firms, %d consents, %s to %s, built in %s", db, o.banks, o.firms, len(m.consents),
		m.start.Format(time.DateOnly), gen.end.Format("2006-01-02 15:04"), time.Since(modelStart).Round(time.Millisecond))
	var load *auditBenchLoad
	var nConsents, nReceipts int
	peakRSS := "unknown"
	if o.reuse == "" {
		key := auditBenchKey(o.seed)
		var err error
		if nConsents, nReceipts, err = insertAuditBenchConsents(ctx, store.Conn(), m); err != nil {
			return err
		}
		say("inserted %d consents and %d receipts; generating, sealing and inserting %d events (%d generators, %d inserters, blocks of %d)",
			nConsents, nReceipts, o.events, o.generators, o.inserters, o.block)
		bar := progressbar.NewOptions(o.events, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("insert   "),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }))
		if load, err = loadAuditBench(ctx, store, m, o.generators, o.inserters, key.Private, key.ID, bar); err != nil {
			return err
		}
		peakRSS = auditBenchPeakRSS()
		say("inserted %d events (%.0f MB canonical) in %s: %.0f events/s; peak RSS of this process %s", load.events, float64(load.bytes)/1e6,
			load.took.Round(time.Second), float64(load.events)/load.took.Seconds(), peakRSS)
	}
	settleStart := time.Now()
	waitForMerges(ctx, store, o.settle)
	merged := time.Since(settleStart)
	for o.quietLoad > 0 && time.Since(settleStart) < o.settle && auditBenchLoad1() >= o.quietLoad {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	storage, err := auditBenchStorage(ctx, store)
	if err != nil {
		return err
	}
	mix, err := auditBenchMix(ctx, store)
	if err != nil {
		return err
	}
	say("merges settled after %s, load average %s; %s", merged.Round(time.Second), loadAverage(), storage)

	// 3. The queries.
	loadBefore := loadAverage()
	measureStart := time.Now()
	stats, err := measureAuditQueries(ctx, store, m, auditBenchKey(o.seed), o.runs, o.queryTime, o.seed, runID, say)
	if err != nil {
		return err
	}
	loadAfter := loadAverage()
	measureTook := time.Since(measureStart)

	// 4. Report.
	var chVersion string
	if err := store.Conn().QueryRow(ctx, "SELECT version()").Scan(&chVersion); err != nil {
		chVersion = "unknown"
	}
	table := auditBenchTable(stats) + "\nWhat each query of a call read, from system.query_log:\n\n" + auditBenchDetail(stats)
	var notes strings.Builder
	fmt.Fprintf(&notes, "- events: %d sealed access events from %s to %s (%d years, growing to 2.5× the first month's rate, business hours in UTC+8, quiet weekends); %d banks (power law: the largest has %.1f%% of bank events), %d firms, %d regulators; seed %d\n",
		o.events, m.start.Format(time.DateOnly), gen.end.Format("2006-01-02 15:04"), o.years, o.banks, 100/m.bankCum[len(m.bankCum)-1], o.firms, o.regulators, o.seed)
	fmt.Fprintf(&notes, "- mix: %s\n", mix)
	if load != nil {
		fmt.Fprintf(&notes, "- chain columns computed as the sealer does: canonical bytes (%.0f MB), %d chains with dense sequence numbers in time order, SHA-256 hashes, an Ed25519-signed digest per chain every %d events (so the database verifies); %d consents (%d receipts, placeholder JWS) behind the decisions\n",
			float64(load.bytes)/1e6, o.chains, o.block, nConsents, nReceipts)
		fmt.Fprintf(&notes, "- loading: %s, %.0f events/s (%d generators, one sealer in block order, %d concurrent column-wise PrepareBatch inserts of %d events, at most %d blocks in memory; the materialized view fills audit_events_by_firm in the same inserts); peak RSS of the bench process %s\n",
			load.took.Round(time.Second), float64(load.events)/load.took.Seconds(), o.generators, o.inserters, o.block, o.generators+o.inserters+2, peakRSS)
	} else {
		fmt.Fprintf(&notes, "- database %s reused\n", db)
	}
	fmt.Fprintf(&notes, "- storage when measured (merges waited for %s): %s\n", merged.Round(time.Second), storage)
	fmt.Fprintf(&notes, "- queries: schema.AuditQueries as the API calls it; parameters drawn per run (institutions by their share of events, firms by popularity, whole months among the last 12); each run is followed by its baseline with the same range; p99 is the nearest rank, so with %d runs or fewer it is the slowest call; rows and MB read are the medians of system.query_log's read_rows and read_bytes per call (all queries of a call summed); measuring took %s\n",
		o.runs, measureTook.Round(time.Second))
	fmt.Fprintf(&notes, "- load average before %s, after %s\n", loadBefore, loadAfter)
	machine := benchMachine(chVersion)
	fmt.Fprintf(stdout, "\nbench audit: %d events\n\n%s\n%s%s", o.events, table, notes.String(), machine)
	if o.noAppend {
		return nil
	}
	cmdline := strings.TrimSpace("firmbridge bench audit " + strings.Join(args, " "))
	if err := appendBenchmark(o.output, "audit", now, cmdline, table, notes.String(), machine); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "appended to %s\n", o.output)
	return nil
}

// auditBenchPeakRSS is the process's peak resident memory (VmHWM).
func auditBenchPeakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return fmt.Sprintf("%.0f MB", float64(kb)/1024)
			}
		}
	}
	return "unknown"
}

// auditBenchLoad1 is the 1-minute load average, 0 when unknown.
func auditBenchLoad1() float64 {
	f, _, _ := strings.Cut(loadAverage(), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// auditBenchStorage describes the audit tables' active parts.
func auditBenchStorage(ctx context.Context, store *schema.Store) (string, error) {
	rows, err := store.Conn().Query(ctx, `SELECT table, sum(rows), count(), uniqExact(partition), sum(bytes_on_disk)
		FROM system.parts WHERE active AND database = currentDatabase() AND table IN ('audit_events', 'audit_events_by_firm')
		GROUP BY table ORDER BY table`)
	if err != nil {
		return "", fmt.Errorf("bench audit: storage: %w", err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var table string
		var n, count, partitions, size uint64
		if err := rows.Scan(&table, &n, &count, &partitions, &size); err != nil {
			return "", fmt.Errorf("bench audit: storage: %w", err)
		}
		parts = append(parts, fmt.Sprintf("%s %d rows in %d parts of %d monthly partitions, %.0f MB on disk", table, n, count, partitions, float64(size)/1e6))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("bench audit: storage: %w", err)
	}
	return strings.Join(parts, "; "), nil
}

// auditBenchMix summarizes roles, decisions and denial reasons as stored.
func auditBenchMix(ctx context.Context, store *schema.Store) (string, error) {
	rows, err := store.Conn().Query(ctx, `SELECT if(role = '', '(unauthenticated)', role) AS r, toString(decision) AS d, reason, count() AS n
		FROM audit_events GROUP BY r, d, reason ORDER BY n DESC`)
	if err != nil {
		return "", fmt.Errorf("bench audit: mix: %w", err)
	}
	defer rows.Close()
	roles, reasons := map[string]uint64{}, map[string]uint64{}
	var total, denied uint64
	for rows.Next() {
		var role, decision, reason string
		var n uint64
		if err := rows.Scan(&role, &decision, &reason, &n); err != nil {
			return "", fmt.Errorf("bench audit: mix: %w", err)
		}
		roles[role] += n
		total += n
		if decision == "deny" {
			denied += n
			reasons[reason] += n
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("bench audit: mix: %w", err)
	}
	if total == 0 {
		return "no events", nil
	}
	share := func(m map[string]uint64, of uint64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int { return int(m[b]) - int(m[a]) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.1f%%", k, 100*float64(m[k])/float64(of))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("roles %s; denied %.1f%% (of all events: %s)", share(roles, total), 100*float64(denied)/float64(total), share(reasons, total)), nil
}
