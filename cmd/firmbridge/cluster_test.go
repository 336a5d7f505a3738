//go:build cluster

package main

// Fault tests of cluster mode, against the local cluster of
// deploy/local/cluster.sh: ZooKeeper, two ClickHouse servers (one shard,
// two replicas) and three Kafka brokers (replication factor 3,
// min.insync.replicas 2). They kill real servers with SIGKILL and start
// them again. Run them with `make test-cluster`, which starts the cluster,
// exports its settings and runs `go test -tags cluster -run TestCluster`.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

const clusterHowTo = "start the local cluster and export its settings: `deploy/local/cluster.sh up && eval \"$(deploy/local/cluster.sh env)\"`, or run `make test-cluster`"

// clusterServers returns the ClickHouse servers of the cluster, in the
// order clients try them, and fails the test outside cluster mode.
func clusterServers(t *testing.T) []string {
	t.Helper()
	addrs := schema.Addrs(testenv.ClickHouseAddr())
	if testenv.ClickHouseCluster() == "" || len(addrs) < 2 || len(testenv.KafkaBrokers()) < 3 {
		t.Fatalf("cluster tests need FIRMBRIDGE_CLICKHOUSE_CLUSTER, two ClickHouse servers in FIRMBRIDGE_CLICKHOUSE_ADDR and three brokers in FIRMBRIDGE_KAFKA_BROKERS; %s", clusterHowTo)
	}
	return addrs
}

// clusterNode runs `deploy/local/cluster.sh ACTION NODE` (kill, start, ...).
func clusterNode(t *testing.T, action, node string) {
	t.Helper()
	script, err := filepath.Abs("../../deploy/local/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, action, node).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %s %s: %v\n%s", action, node, err, out)
	}
	t.Logf("cluster.sh %s %s: %s", action, node, strings.TrimSpace(string(out)))
}

// restartOnFailure starts node again at the end of the test if the test
// stopped before doing so, so that one failure does not break the next test.
func restartOnFailure(t *testing.T, nodes ...string) {
	t.Cleanup(func() {
		for _, n := range nodes {
			script, _ := filepath.Abs("../../deploy/local/cluster.sh")
			_ = exec.Command(script, "start", n).Run()
		}
	})
}

// serverStore opens the scratch database of store on one server only.
func serverStore(t *testing.T, addr, database string) *schema.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := schema.Open(ctx, schema.Config{Addr: addr, Database: database})
	if err != nil {
		t.Fatalf("ClickHouse server %s: %v", addr, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ingestProcess runs `firmbridge ingest` (pipelines and audit sealer) on
// the cluster until the test ends or stop is called.
type ingestProcess struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func startIngest(t *testing.T, bin string, store *schema.Store, kcfg kafka.Config, auditKey string, extra ...string) *ingestProcess {
	t.Helper()
	p := &ingestProcess{exited: make(chan struct{}), logPath: filepath.Join(t.TempDir(), "ingest.log")}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"ingest", "--group", "cluster-" + kcfg.TopicPrefix, "--batch-rows", "20000", "--batch-wait", "500ms",
		"--ops-addr", "127.0.0.1:0", "--clickhouse", testenv.ClickHouseAddr(), "--clickhouse-cluster", testenv.ClickHouseCluster(),
		"--clickhouse-db", store.Database(), "--topic-prefix", kcfg.TopicPrefix, "--kafka", strings.Join(kcfg.Brokers, ","),
		"--log-level", "warn", "--audit-key-file", auditKey}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			log, _ := os.ReadFile(p.logPath)
			t.Logf("ingest log:\n%s", tail(log, 60))
		}
	})
	return p
}

// stop sends SIGTERM and fails the test unless ingest drains and exits cleanly.
func (p *ingestProcess) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("ingest did not stop within 60 s of SIGTERM")
	}
	if !p.cmd.ProcessState.Success() {
		log, _ := os.ReadFile(p.logPath)
		t.Errorf("ingest did not stop cleanly on SIGTERM: %v\n%s", p.cmd.ProcessState, tail(log, 40))
	}
}

// waitReplicasInSync waits until every replicated table of database on
// server has an empty replication queue, so its rows can be counted.
func waitReplicasInSync(t *testing.T, s *schema.Store, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		var tables, queued, inactive uint64
		err := s.Conn().QueryRow(context.Background(), `SELECT count(), toUInt64(sum(queue_size)), toUInt64(sum(total_replicas - active_replicas))
			FROM system.replicas WHERE database = ?`, s.Database()).Scan(&tables, &queued, &inactive)
		if err == nil && tables > 0 && queued == 0 && inactive == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas of %s not in sync after %s: %d tables, %d queued entries, %d inactive replicas (err %v)", s.Database(), bound, tables, queued, inactive, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkReplica reads, on one server's own replicas (the _local tables),
// each reliability table: read as the platform reads it (FINAL), it holds
// the expected distinct records and the expected sum of their newest
// versions. With physical set, the rows themselves hold every record
// version exactly once, without FINAL: nothing was inserted twice, or
// replication dropped the repeat. A redelivered Kafka batch (after a
// consumer group rebalance) is inserted again as a different block, which
// only ReplacingMergeTree resolves, so tests with redelivery check reads.
func checkReplica(t *testing.T, s *schema.Store, addr string, e expectation, physical bool) map[string]uint64 {
	t.Helper()
	rows := map[string]uint64{}
	for _, want := range reliabilitySources {
		local := want.table + schema.LocalSuffix
		var n, versions, records uint64
		if err := s.Conn().QueryRow(context.Background(), fmt.Sprintf("SELECT count(), uniqExact(record_id, version), uniqExact(record_id) FROM %s", local)).Scan(&n, &versions, &records); err != nil {
			t.Fatalf("%s on %s: %v", want.table, addr, err)
		}
		var final uint64
		var sum decimal.Decimal
		if err := s.Conn().QueryRow(context.Background(), fmt.Sprintf("SELECT count(), sum(%s) FROM %s FINAL", want.sum, local)).Scan(&final, &sum); err != nil {
			t.Fatalf("%s on %s: %v", want.table, addr, err)
		}
		if int(final) != e.records[want.table] || int(records) != e.records[want.table] || !sum.Equal(e.sums[want.table]) {
			t.Errorf("%s on %s reads %d records (%d distinct ids) summing to %s, want %d summing to %s",
				want.table, addr, final, records, sum, e.records[want.table], e.sums[want.table])
		}
		switch {
		case n != versions && physical:
			t.Errorf("%s on %s holds %d rows for %d record versions: %d doubled", want.table, addr, n, versions, n-versions)
		case n != versions:
			t.Logf("%s on %s holds %d rows for %d record versions until merges replace the %d re-inserted by redelivery", want.table, addr, n, versions, n-versions)
		}
		rows[want.table] = n
	}
	return rows
}

// TestCluster_IngestWhileClickHouseServerDies is test (a) of cluster mode:
// 200k records are ingested while the ClickHouse server the ingest process
// writes to is killed with SIGKILL and, 10 s later, started again. At the
// end every replica holds every record once, and profiles read from either
// server agree.
func TestCluster_IngestWhileClickHouseServerDies(t *testing.T) {
	servers := clusterServers(t)
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	bin := buildBinary(t)
	recs := streamRecords(t, 31, 200000, 0)
	e := expect(t, recs)
	publish(t, kcfg, recs)

	restartOnFailure(t, "ch1")
	ingest := startIngest(t, bin, store, kcfg, writeAuditKey(t))
	total := func() int { return storedTotal(store, e) }
	// Mid-stream: once a quarter of the records are stored.
	deadline := time.Now().Add(90 * time.Second)
	for total() < len(recs)/4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	before := total()
	clusterNode(t, "kill", "ch1") // the first server: where ingest writes
	killed := time.Now()
	time.Sleep(10 * time.Second)
	during := total()
	clusterNode(t, "start", "ch1")
	t.Logf("records stored before ch1 was killed: %d of %d; during its 10 s outage: %d more", before, len(recs), during-before)
	if during <= before {
		t.Errorf("nothing was stored while ch1 was down: ingest did not move to ch2")
	}
	waitStored(t, store, e, 4*time.Minute)
	t.Logf("all %d records stored %s after ch1 was killed", len(recs), time.Since(killed).Round(time.Second))
	ingest.stop(t)
	checkStored(t, store, e)

	var counts []map[string]uint64
	for _, addr := range servers {
		s := serverStore(t, addr, store.Database())
		waitReplicasInSync(t, s, 2*time.Minute)
		counts = append(counts, checkReplica(t, s, addr, e, true))
	}
	for table, n := range counts[0] {
		if counts[1][table] != n {
			t.Errorf("%s: %s holds %d rows, %s holds %d", table, servers[0], n, servers[1], counts[1][table])
		}
	}

	// Profiles read through either server are the same.
	var reqs []firmbridge.ProfileRequest
	seen := map[string]bool{}
	for _, r := range recs {
		if !seen[r.Envelope.USCC] && len(reqs) < 40 {
			seen[r.Envelope.USCC] = true
			reqs = append(reqs, firmbridge.ProfileRequest{USCC: r.Envelope.USCC, Scopes: firmbridge.Scopes})
		}
	}
	var profiles []string
	for _, addr := range servers {
		got, err := schema.ProfileReader{Store: serverStore(t, addr, store.Database())}.ReadProfiles(context.Background(), reqs)
		if err != nil {
			t.Fatalf("profiles from %s: %v", addr, err)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(reqs) {
			t.Errorf("%s returned %d profiles of %d", addr, len(got), len(reqs))
		}
		profiles = append(profiles, string(b))
	}
	if profiles[0] != profiles[1] {
		t.Errorf("profiles differ between servers:\n%s: %.2000s\n%s: %.2000s", servers[0], profiles[0], servers[1], profiles[1])
	}
}

// TestCluster_IngestWhileBrokerDies is test (b): a Kafka broker is killed
// mid-stream, while records are still being produced and consumed, and
// started again 10 s later. Nothing is lost, and nothing is doubled in what
// the platform reads: every replica reads each record once, with exact sums.
func TestCluster_IngestWhileBrokerDies(t *testing.T) {
	servers := clusterServers(t)
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	bin := buildBinary(t)
	recs := streamRecords(t, 37, 100000, 0)
	e := expect(t, recs)
	half := len(recs) / 2
	publish(t, kcfg, recs[:half])

	restartOnFailure(t, "kafka1")
	ingest := startIngest(t, bin, store, kcfg, writeAuditKey(t))
	waitRows := time.Now().Add(90 * time.Second)
	for time.Now().Before(waitRows) {
		if records, _, err := stored(context.Background(), store, e); err == nil && records["tax_vat_returns"] > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	clusterNode(t, "kill", "kafka1") // the first bootstrap broker
	killed := time.Now()
	// The producer keeps writing with acks from all in-sync replicas: two
	// of three brokers satisfy min.insync.replicas.
	publish(t, kcfg, recs[half:])
	t.Logf("second half of %d records produced %s after kafka1 was killed", len(recs)-half, time.Since(killed).Round(time.Millisecond))
	time.Sleep(time.Until(killed.Add(10 * time.Second)))
	clusterNode(t, "start", "kafka1")
	waitStored(t, store, e, 4*time.Minute)
	t.Logf("all %d records stored %s after kafka1 was killed", len(recs), time.Since(killed).Round(time.Second))
	ingest.stop(t)
	checkStored(t, store, e)
	for _, addr := range servers {
		s := serverStore(t, addr, store.Database())
		waitReplicasInSync(t, s, 2*time.Minute)
		// A broker that led the group coordinator died: the group rebalanced
		// and uncommitted batches came again (see checkReplica).
		checkReplica(t, s, addr, e, false)
	}
	if n := deadLetters(t, kcfg); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestCluster_ServesWithServersDown is test (c): with one ClickHouse server
// and one broker killed, the API keeps serving profiles and writing access
// events, and the sealer keeps sealing them (the API refuses firm data
// when the newest digest is older than --audit-max-digest-age, here 30 s).
func TestCluster_ServesWithServersDown(t *testing.T) {
	clusterServers(t)
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	bin := buildBinary(t)
	keyFile, tokens := tokenKey(t)
	recs := streamRecords(t, 41, 2000, 0)
	e := expect(t, recs)
	publish(t, kcfg, recs)
	uscc := recs[0].Envelope.USCC
	bank := mustToken(t, tokens, "bank", testBank)
	firm := mustToken(t, tokens, "enterprise", uscc)

	restartOnFailure(t, "ch1", "kafka1")
	startIngest(t, bin, store, kcfg, writeAuditKey(t), "--audit-digest-interval", "1s")
	waitStored(t, store, e, 2*time.Minute)

	url := startServe(t, bin, "serve", "--clickhouse", testenv.ClickHouseAddr(),
		"--clickhouse-cluster", testenv.ClickHouseCluster(), "--clickhouse-db", store.Database(),
		"--kafka", strings.Join(kcfg.Brokers, ","), "--topic-prefix", kcfg.TopicPrefix, "--key-file", keyFile,
		"--log-level", "warn", "--audit-max-digest-age", "30s")
	status, _, body := call(t, "POST", url+"/v1/consents", firm, `{"grantee":"`+testBank+`","scopes":["tax","operations"],"purpose":"credit_assessment"}`)
	if status != 201 {
		t.Fatalf("grant: %d %s", status, body)
	}
	profile := url + "/v1/firms/" + uscc + "/profile?purpose=credit_assessment"
	waitFor(t, "a profile before the outage", func() bool {
		status, _, _ := call(t, "GET", profile, bank, "")
		return status == 200
	})

	clusterNode(t, "kill", "ch1")
	clusterNode(t, "kill", "kafka1")
	killed := time.Now()
	// Failover: the first requests may meet dead pooled connections or a
	// partition whose leader was on kafka1. Once one succeeds, every later
	// request for 30 s must succeed.
	var failures []string
	recovered := time.Duration(-1)
	for time.Since(killed) < 60*time.Second {
		status, _, body := call(t, "GET", profile, bank, "")
		if status == 200 {
			recovered = time.Since(killed)
			break
		}
		failures = append(failures, fmt.Sprintf("%d %.120s", status, body))
		time.Sleep(100 * time.Millisecond)
	}
	if recovered < 0 {
		t.Fatalf("no profile served within 60 s of the kills; answers: %v", failures)
	}
	t.Logf("first profile after the kills at %s, after %d failed requests: %v", recovered.Round(time.Millisecond), len(failures), failures)
	var requestIDs []string
	steady := time.Now()
	for time.Since(steady) < 30*time.Second {
		id := fmt.Sprintf("outage-%s-%d", kcfg.TopicPrefix, len(requestIDs))
		req, err := http.NewRequest("GET", profile, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bank)
		req.Header.Set("X-Request-ID", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d, %s into the outage: %d %s", len(requestIDs)+1, time.Since(killed).Round(time.Millisecond), resp.StatusCode, body)
		}
		requestIDs = append(requestIDs, id)
		time.Sleep(100 * time.Millisecond)
	}
	served := len(requestIDs)
	t.Logf("%d profiles served in 30 s with ch1 and kafka1 down", served)

	// Every one of those reads is sealed, still during the outage.
	sealedBy := time.Now().Add(60 * time.Second)
	for {
		var n uint64
		err := store.Conn().QueryRow(context.Background(), "SELECT uniqExact(request_id) FROM audit_events WHERE startsWith(request_id, ?)", "outage-"+kcfg.TopicPrefix).Scan(&n)
		if err == nil && int(n) == len(requestIDs) {
			t.Logf("all %d reads sealed %s after the kills", n, time.Since(killed).Round(time.Millisecond))
			break
		}
		if time.Now().After(sealedBy) {
			t.Fatalf("60 s after the last read, %d of its %d reads are sealed (err %v)", n, len(requestIDs), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	clusterNode(t, "start", "ch1")
	clusterNode(t, "start", "kafka1")
}
