package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// reliabilitySources are the sources the reliability tests stream. Their
// tables are keyed (uscc, record_id), so FINAL gives one row per record.
var reliabilitySources = map[string]struct{ table, sum string }{
	"tax.vat_return":  {"tax_vat_returns", "sales"},
	"ops.electricity": {"ops_electricity", "consumption_kwh"},
	"ops.water":       {"ops_water", "volume_m3"},
}

// streamRecords generates n records of reliabilitySources (with a share of
// malformed ones if asked), deterministically for seed.
func streamRecords(t *testing.T, seed int64, n int, malformed float64) []synth.Record {
	t.Helper()
	firms := synth.Firms(seed, n/8+10)
	end := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var out []synth.Record
	for _, r := range synth.Generate(seed, firms, 36, end, synth.Options{Malformed: malformed}) {
		if _, ok := reliabilitySources[r.Envelope.Source]; ok {
			out = append(out, r)
		}
		if len(out) == n {
			return out
		}
	}
	t.Fatalf("generated only %d records of %d", len(out), n)
	return nil
}

// expectation is what ClickHouse must hold after the stream: per table the
// distinct records and the sum of one amount column, newest version each.
type expectation struct {
	records map[string]int
	sums    map[string]decimal.Decimal
	rejects int
}

func expect(t *testing.T, recs []synth.Record) expectation {
	t.Helper()
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	type versioned struct {
		version uint64
		amount  decimal.Decimal
	}
	newest := map[string]map[string]versioned{}
	e := expectation{records: map[string]int{}, sums: map[string]decimal.Decimal{}}
	for _, r := range recs {
		rows, err := reg.Normalize(context.Background(), r.Envelope, time.Now())
		if err != nil {
			e.rejects++
			continue
		}
		want := reliabilitySources[r.Envelope.Source]
		for _, row := range rows {
			if row.Table() != want.table {
				continue
			}
			cols, vals := row.Columns(), row.Values()
			v := versioned{version: vals[slices.Index(cols, "version")].(uint64), amount: vals[slices.Index(cols, want.sum)].(decimal.Decimal)}
			id := vals[slices.Index(cols, "record_id")].(string)
			if newest[want.table] == nil {
				newest[want.table] = map[string]versioned{}
			}
			if old, ok := newest[want.table][id]; !ok || v.version >= old.version {
				newest[want.table][id] = v
			}
		}
	}
	for table, byID := range newest {
		e.records[table] = len(byID)
		sum := decimal.Zero
		for _, v := range byID {
			sum = sum.Add(v.amount)
		}
		e.sums[table] = sum
	}
	return e
}

// stored reads what ClickHouse holds of each expected table.
func stored(ctx context.Context, store *schema.Store, e expectation) (map[string]int, map[string]decimal.Decimal, error) {
	records, sums := map[string]int{}, map[string]decimal.Decimal{}
	for _, want := range reliabilitySources {
		var n uint64
		var sum decimal.Decimal
		if err := store.Conn().QueryRow(ctx, fmt.Sprintf("SELECT count(), sum(%s) FROM %s FINAL", want.sum, want.table)).Scan(&n, &sum); err != nil {
			return nil, nil, err
		}
		records[want.table], sums[want.table] = int(n), sum
	}
	return records, sums, nil
}

// storedTotal is the number of expected records ClickHouse holds so far,
// over all reliability tables (0 while it cannot tell).
func storedTotal(store *schema.Store, e expectation) int {
	records, _, _ := stored(context.Background(), store, e)
	n := 0
	for _, c := range records {
		n += c
	}
	return n
}

func checkStored(t *testing.T, store *schema.Store, e expectation) {
	t.Helper()
	records, sums, err := stored(context.Background(), store, e)
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range e.records {
		if records[table] != want || !sums[table].Equal(e.sums[table]) {
			t.Errorf("%s: %d records summing to %s, want %d summing to %s", table, records[table], sums[table], want, e.sums[table])
		}
	}
}

func waitStored(t *testing.T, store *schema.Store, e expectation, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		records, _, err := stored(context.Background(), store, e)
		done := err == nil
		for table, want := range e.records {
			done = done && records[table] >= want
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s ClickHouse holds %v (err %v), want %v", bound, records, err, e.records)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// publish writes records to the prefixed raw topics, keyed by USCC.
func publish(t *testing.T, kcfg kafka.Config, recs []synth.Record) {
	t.Helper()
	envs := make([]firmbridge.Envelope, len(recs))
	for i, r := range recs {
		envs[i] = r.Envelope
	}
	if _, err := publishEnvelopes(context.Background(), kcfg, envs, firmbridge.RawOrigin{Org: "test"}); err != nil {
		t.Fatal(err)
	}
}

// deadLetters counts the messages in the dead-letter topics.
func deadLetters(t *testing.T, kcfg kafka.Config) int64 {
	t.Helper()
	var total int64
	for _, d := range firmbridge.Domains {
		total += testenv.Messages(t, kcfg, kcfg.Topic(firmbridge.DeadLetterTopic(d)))
	}
	return total
}

// runningPipelines are one ingest pipeline per domain, running until stop.
type runningPipelines struct {
	list   []*ingest.Pipeline
	cancel context.CancelFunc
	done   chan error
}

// startPipelines runs a pipeline per domain from the prefixed raw topics
// into store, with the real connectors.
func startPipelines(t *testing.T, kcfg kafka.Config, store ingest.Sink, batchRows int, batchWait time.Duration) *runningPipelines {
	t.Helper()
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPipelines{cancel: cancel, done: make(chan error, len(firmbridge.Domains))}
	for _, d := range firmbridge.Domains {
		p := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: kcfg.Topic(firmbridge.RawTopic(d)), GroupID: "g-" + kcfg.TopicPrefix + d,
			DeadLetterTopic: kcfg.Topic(firmbridge.DeadLetterTopic(d)), Decode: ingest.EnvelopeDecoder(reg), Sink: store,
			BatchRows: batchRows, BatchWait: batchWait}
		r.list = append(r.list, p)
		go func() { r.done <- p.Run(ctx) }()
	}
	return r
}

// rows counts the rows the pipelines stored.
func (r *runningPipelines) rows() (n int64) {
	for _, p := range r.list {
		n += p.Stats().Rows.Load()
	}
	return n
}

// waitFirstRows waits, at most a minute, until some rows were stored.
func (r *runningPipelines) waitFirstRows() {
	deadline := time.Now().Add(time.Minute)
	for r.rows() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the pipelines, fails the test on their errors, and returns the
// records they consumed, dead-lettered and the retries they made.
func (r *runningPipelines) stop(t *testing.T) (messages, deadLetters, retries int64) {
	t.Helper()
	r.cancel()
	for range r.list {
		if err := <-r.done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	}
	for _, p := range r.list {
		messages += p.Stats().Messages.Load()
		deadLetters += p.Stats().DeadLetters.Load()
		retries += p.Stats().Retries.Load()
	}
	return messages, deadLetters, retries
}

// TestIngest_MalformedRecords: with 5% malformed records, records in =
// records stored + dead letters, exactly.
func TestIngest_MalformedRecords(t *testing.T) {
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	recs := streamRecords(t, 7, 20000, 0.05)
	e := expect(t, recs)
	if e.rejects < 800 || e.rejects > 1200 {
		t.Fatalf("generator made %d malformed records of %d, want about 5%%", e.rejects, len(recs))
	}
	publish(t, kcfg, recs)
	pipelines := startPipelines(t, kcfg, store, 5000, 300*time.Millisecond)
	waitStored(t, store, e, 2*time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for deadLetters(t, kcfg) < int64(e.rejects) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	in, dead, _ := pipelines.stop(t)
	checkStored(t, store, e)
	if got := deadLetters(t, kcfg); got != int64(e.rejects) || dead != got {
		t.Errorf("dead-letter topics hold %d, pipelines dead-lettered %d; want %d", got, dead, e.rejects)
	}
	if in != int64(len(recs)) {
		t.Errorf("pipelines consumed %d records, want %d", in, len(recs))
	}
}

// writeAuditKey writes a fresh audit digest signing key for an ingest
// process and returns its path.
func writeAuditKey(t *testing.T) string {
	t.Helper()
	path, _ := tokenKey(t)
	return path
}

// tokenKey writes a fresh Ed25519 signing key for a serve (or ingest)
// process and returns its path and the tokens it signs, as serve's
// defaults expect them.
func tokenKey(t *testing.T) (string, *api.Tokens) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.pem")
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := api.WriteSigningKey(path, key); err != nil {
		t.Fatal(err)
	}
	return path, &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key}
}

// buildBinary compiles firmbridge once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "firmbridge")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestIngest_KillNine: 200k records; the ingest process is killed with
// SIGKILL at 5 random moments and restarted each time. At the end
// ClickHouse holds exactly the distinct records with the right sums.
func TestIngest_KillNine(t *testing.T) {
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	bin := buildBinary(t)
	recs := streamRecords(t, 11, 200000, 0)
	e := expect(t, recs)
	publish(t, kcfg, recs)

	// firmbridge ingest seals the audit topic too, which needs its key.
	auditKey := writeAuditKey(t)
	logPath := filepath.Join(t.TempDir(), "ingest.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "ingest", "--group", "kill-"+kcfg.TopicPrefix, "--batch-rows", "20000", "--batch-wait", "500ms",
			"--ops-addr", "127.0.0.1:0", "--clickhouse-db", store.Database(), "--topic-prefix", kcfg.TopicPrefix,
			"--kafka", strings.Join(kcfg.Brokers, ","), "--clickhouse", testenv.ClickHouseAddr(), "--log-level", "warn",
			"--audit-key-file", auditKey)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("kill moments drawn with seed %d", seed)
	total := func() int { return storedTotal(store, e) }
	for i := range 5 {
		before := total()
		cmd := start()
		// Kill mid-stream: once this run stored something, at a random
		// moment in the next 1.5 s.
		deadline := time.Now().Add(90 * time.Second)
		for total() == before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		pause := time.Duration(rng.IntN(1500)) * time.Millisecond
		time.Sleep(pause)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill -9 #%d, %s after its first stored batch: %d of %d records stored", i+1, pause, total(), len(recs))
	}
	cmd := start()
	waitStored(t, store, e, 4*time.Minute)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		log, _ := os.ReadFile(logPath)
		t.Errorf("ingest did not stop cleanly on SIGTERM: %v\n%s", err, log)
	}
	checkStored(t, store, e)
	if n := deadLetters(t, kcfg); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// privateService starts a ClickHouse or Kafka of the test's own with a
// deploy/local script, so that stopping it disturbs no other test. It
// returns the script runner; ports maps the script's port variables to
// the ports chosen.
func privateService(t *testing.T, script string, ports ...string) (func(action string), map[string]string) {
	t.Helper()
	path, err := filepath.Abs("../../deploy/local/" + script)
	if err != nil {
		t.Fatal(err)
	}
	// None of the shared instance's settings (deploy/local/test.sh exports
	// its folders and ports) may leak into the private one.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FIRMBRIDGE_") {
			env = append(env, kv)
		}
	}
	chosen := map[string]string{}
	env = append(env, "FIRMBRIDGE_HOME="+t.TempDir())
	for _, name := range ports {
		chosen[name] = freePort(t)
		env = append(env, name+"="+chosen[name])
	}
	run := func(action string) {
		t.Helper()
		cmd := exec.Command(path, action)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", script, action, err, out)
		}
	}
	run("start")
	t.Cleanup(func() { run("stop") })
	return run, chosen
}

// privateClickHouse starts a ClickHouse of the test's own and returns the
// script runner and its native address.
func privateClickHouse(t *testing.T) (func(action string), string) {
	t.Helper()
	run, ports := privateService(t, "clickhouse.sh", "FIRMBRIDGE_CH_TCP_PORT", "FIRMBRIDGE_CH_HTTP_PORT")
	return run, "127.0.0.1:" + ports["FIRMBRIDGE_CH_TCP_PORT"]
}

// TestIngest_ClickHouseOutage: ClickHouse stops for about 10 s mid-stream
// and comes back; nothing is lost and nothing doubled.
func TestIngest_ClickHouseOutage(t *testing.T) {
	clickhouse, addr := privateClickHouse(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	store, err := schema.Open(ctx, schema.Config{Addr: addr, Database: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kcfg := testenv.PrefixedKafka(t)
	recs := streamRecords(t, 13, 60000, 0)
	e := expect(t, recs)
	publish(t, kcfg, recs)
	pipelines := startPipelines(t, kcfg, store, 2000, 200*time.Millisecond)
	pipelines.waitFirstRows()
	clickhouse("stop")
	atStop := pipelines.rows()
	time.Sleep(10 * time.Second)
	duringOutage := pipelines.rows() - atStop
	clickhouse("start")
	waitStored(t, store, e, 2*time.Minute)
	_, _, retries := pipelines.stop(t)
	checkStored(t, store, e)
	t.Logf("rows stored before the outage %d, during it %d; retries %d", atStop, duringOutage, retries)
	if retries == 0 {
		t.Error("no insert was retried: the outage was not exercised")
	}
	if n := deadLetters(t, kcfg); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestIngest_KafkaOutage: the broker stops for about 10 s mid-stream and
// comes back; the pipelines reconnect, and nothing is lost or doubled.
func TestIngest_KafkaOutage(t *testing.T) {
	kafkaSvc, ports := privateService(t, "kafka.sh", "FIRMBRIDGE_KAFKA_PORT", "FIRMBRIDGE_KAFKA_CONTROLLER_PORT")
	store := testenv.Store(t)
	kcfg := kafka.Config{Brokers: []string{"127.0.0.1:" + ports["FIRMBRIDGE_KAFKA_PORT"]}, Partitions: 2, TopicPrefix: "outage."}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kcfg, kcfg.PlatformTopics()...); err != nil {
		t.Fatal(err)
	}
	recs := streamRecords(t, 17, 60000, 0)
	e := expect(t, recs)
	publish(t, kcfg, recs)
	pipelines := startPipelines(t, kcfg, store, 2000, 200*time.Millisecond)
	pipelines.waitFirstRows()
	kafkaSvc("stop")
	atStop := pipelines.rows()
	time.Sleep(10 * time.Second)
	kafkaSvc("start")
	waitStored(t, store, e, 3*time.Minute)
	pipelines.stop(t)
	checkStored(t, store, e)
	t.Logf("rows stored before the broker stopped: %d of %d records", atStop, len(recs))
	if n := deadLetters(t, kcfg); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}
