package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// auditMessages returns n access events as the API writes them, keyed by
// firm so they spread over the partitions, with a malformed record after
// every badEvery (none when 0).
func auditMessages(t *testing.T, first, n, badEvery int) []kafkago.Message {
	t.Helper()
	var msgs []kafkago.Message
	for i := first; i < first+n; i++ {
		e := &firmbridge.AccessEvent{EventID: fmt.Sprintf("ev-%06d", i), RequestID: fmt.Sprintf("rq-%d", i),
			OccurredAt: time.Date(2025, 2, 28, 23, 0, 0, 0, time.UTC).Add(time.Duration(i) * 1500 * time.Millisecond),
			Subject:    "analyst@BANK-" + fmt.Sprint(i%5), Role: "bank", Org: fmt.Sprintf("BANK-%d", i%5), USCC: fmt.Sprintf("FIRM-%02d", i%37),
			Scopes: []string{"tax"}, Purpose: "credit_assessment", Decision: firmbridge.DecisionAllow, Status: 200,
			ClientAddr: "10.1.2.3", Method: "GET", Path: "/v1/firms/x/profile"}
		if i%3 == 0 {
			e.Decision, e.Status, e.Reason = firmbridge.DecisionDeny, 403, "consent_required"
		}
		body, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafkago.Message{Key: []byte(e.USCC), Value: body})
		if badEvery > 0 && i%badEvery == 0 {
			msgs = append(msgs, kafkago.Message{Key: []byte(e.USCC), Value: []byte(`{"event_id":"bad-` + fmt.Sprint(i) + `","decision":"allow"}`)})
		}
	}
	return msgs
}

func publish(ctx context.Context, kcfg kafka.Config, topic string, msgs []kafkago.Message) error {
	w := kafka.NewWriter(kcfg, topic)
	defer w.Close()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		msgs = msgs[n:]
	}
	return nil
}

type sealerEnv struct {
	store      *schema.Store
	audit      schema.AuditStore
	kcfg       kafka.Config
	topic, dlq string
	group      string
	priv       ed25519.PrivateKey
	keys       firmbridge.AuditKeys
}

func newSealerEnv(t *testing.T) *sealerEnv {
	t.Helper()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "audit", "dlq.audit")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &sealerEnv{store: store, audit: schema.AuditStore{Store: store}, kcfg: kcfg, topic: topics[0], dlq: topics[1],
		group: "sealer-" + topics[0], priv: priv, keys: firmbridge.AuditKeys{"test-key": pub}}
}

func (e *sealerEnv) sealer(store ingest.SealStore) *ingest.Sealer {
	return &ingest.Sealer{Brokers: e.kcfg.Brokers, Topic: e.topic, GroupID: e.group, DeadLetterTopic: e.dlq, Store: store,
		SigningKey: e.priv, KeyID: "test-key", DigestInterval: 300 * time.Millisecond, BatchRows: 400, BatchWait: 100 * time.Millisecond}
}

// start runs a sealer until the returned stop is called; stop returns Run's error.
func start(ctx context.Context, s *ingest.Sealer) (stop func() error) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("sealer did not stop within 60s")
		}
	}
}

func (e *sealerEnv) count(t *testing.T, ctx context.Context, query string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := e.store.Conn().QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *sealerEnv) waitSealed(t *testing.T, ctx context.Context, want uint64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got := e.count(t, ctx, "SELECT count() FROM audit_events FINAL")
		if got == want {
			return
		}
		if got > want || time.Now().After(deadline) {
			t.Fatalf("%d sealed events, want %d", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyAll verifies every chain and returns the reports by chain.
func verifyAll(t *testing.T, ctx context.Context, audit schema.AuditStore, keys firmbridge.AuditKeys) map[uint32]*firmbridge.ChainReport {
	t.Helper()
	chains, err := audit.AuditChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]*firmbridge.ChainReport{}
	for _, c := range chains {
		r, err := audit.VerifyAuditChain(ctx, c, 0, 0, keys)
		if err != nil {
			t.Fatal(err)
		}
		r.RequireSigned()
		out[c] = r
	}
	return out
}

// checkDense asserts each chain holds seq 1..N exactly once, and all events once.
func (e *sealerEnv) checkDense(t *testing.T, ctx context.Context, events int) {
	t.Helper()
	rows, err := e.store.Conn().Query(ctx, "SELECT chain, count(), uniqExact(seq), max(seq), min(seq) FROM audit_events FINAL GROUP BY chain ORDER BY chain")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var total uint64
	for rows.Next() {
		var chain uint32
		var n, uniq, hi, lo uint64
		if err := rows.Scan(&chain, &n, &uniq, &hi, &lo); err != nil {
			t.Fatal(err)
		}
		if n != uniq || hi != n || lo != 1 {
			t.Errorf("chain %d: %d rows, %d distinct seqs, seq %d..%d; want 1..%d once each", chain, n, uniq, lo, hi, n)
		}
		total += n
	}
	if total != uint64(events) {
		t.Errorf("%d events in the chains, want %d", total, events)
	}
	if n := e.count(t, ctx, "SELECT uniqExact(event_id) FROM audit_events FINAL"); n != uint64(events) {
		t.Errorf("%d distinct event ids, want %d", n, events)
	}
	// Rows written twice (re-sealed after a crash) must be identical, not
	// merely share a key: sealing is deterministic.
	if n := e.count(t, ctx, "SELECT count() FROM (SELECT chain, seq FROM audit_events GROUP BY chain, seq HAVING uniqExact(hash, canonical, event_id) > 1)"); n != 0 {
		t.Errorf("%d sequence numbers sealed twice with different content", n)
	}
}

func TestSealer_SealsVerifiesAndCatchesTampering(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := newSealerEnv(t)
	const events, badEvery = 3000, 100
	if err := publish(ctx, env.kcfg, env.topic, auditMessages(t, 0, events, badEvery)); err != nil {
		t.Fatal(err)
	}

	s := env.sealer(env.audit)
	reg := prometheus.NewRegistry()
	s.Metrics = ingest.NewSealerMetrics(reg)
	stop := start(ctx, s)
	env.waitSealed(t, ctx, events)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().DeadLetters.Load(); got != events/badEvery {
		t.Errorf("%d dead letters, want %d", got, events/badEvery)
	}
	env.checkDense(t, ctx, events)
	var firm05 uint64
	for i := range events {
		if i%37 == 5 {
			firm05++
		}
	}
	if n := env.count(t, ctx, "SELECT count() FROM audit_events_by_firm FINAL WHERE uscc = 'FIRM-05'"); n != firm05 {
		t.Errorf("%d events of FIRM-05 by firm, want %d", n, firm05)
	}
	t.Run("metrics", func(t *testing.T) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				got[f.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		if got["firmbridge_audit_events_sealed_total"] != events {
			t.Errorf("events sealed %v, want %d", got["firmbridge_audit_events_sealed_total"], events)
		}
		if got["firmbridge_audit_last_sequence"] != events { // the chains' last seqs add up to the events
			t.Errorf("last sequences add up to %v, want %d", got["firmbridge_audit_last_sequence"], events)
		}
		if since, ok := got["firmbridge_audit_seconds_since_last_digest"]; !ok || since < 0 || since > 60 {
			t.Errorf("seconds since last digest %v (present %v), want a few", since, ok)
		}
	})
	reports := verifyAll(t, ctx, env.audit, env.keys)
	if len(reports) != 2 {
		t.Fatalf("%d chains, want 2 (one per partition)", len(reports))
	}
	for c, r := range reports {
		if !r.OK() || r.Digests < 2 {
			t.Fatalf("chain %d: %+v %v, want verified with digests", c, r, r.Failure)
		}
	}

	t.Run("dead letters carry the reason", func(t *testing.T) {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: env.kcfg.Brokers, Topic: env.dlq, GroupID: "check-" + env.dlq, MaxWait: 250 * time.Millisecond})
		defer r.Close()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for range events / badEvery {
			m, err := r.FetchMessage(rctx)
			if err != nil {
				t.Fatal(err)
			}
			headers := map[string]string{}
			for _, h := range m.Headers {
				headers[h.Key] = string(h.Value)
			}
			if headers[ingest.HeaderRejectCode] != firmbridge.RejectMissingField || headers[ingest.HeaderSourceTopic] != env.topic {
				t.Fatalf("dead letter headers %v, want %s from %s", headers, firmbridge.RejectMissingField, env.topic)
			}
		}
	})

	// Each tampering happens on a copy of the sealed tables, so the cases
	// do not mask each other.
	chain := uint32(0)
	last := reports[chain].LastSeq
	mid := last / 2
	digestAt := func(t *testing.T, audit schema.AuditStore, number uint64) (first uint64) {
		t.Helper()
		if err := audit.Conn().QueryRow(ctx, "SELECT first_seq FROM audit_digests FINAL WHERE chain = ? AND number = ?", chain, number).Scan(&first); err != nil {
			t.Fatal(err)
		}
		return first
	}
	// A digest in the middle that covers events: the one holding mid.
	var midDigest uint64
	if err := env.store.Conn().QueryRow(ctx, "SELECT min(number) FROM audit_digests FINAL WHERE chain = ? AND last_seq >= ? AND first_seq <= last_seq", chain, mid).Scan(&midDigest); err != nil {
		t.Fatal(err)
	}
	// Deleting a digest shows only when a later one names it: delete one
	// with a successor (the mid one, unless it happens to be the newest).
	var lastDigest uint64
	if err := env.store.Conn().QueryRow(ctx, "SELECT max(number) FROM audit_digests FINAL WHERE chain = ?", chain).Scan(&lastDigest); err != nil {
		t.Fatal(err)
	}
	deleted := min(midDigest, lastDigest-1)
	cases := []struct {
		name   string
		tamper []string // SQL run on the copy, in order
		seq    func(t *testing.T, a schema.AuditStore) uint64
		kind   string
	}{
		{"field altered in a column", []string{fmt.Sprintf("ALTER TABLE audit_events UPDATE reason = 'forged' WHERE chain = 0 AND seq = %d", mid)},
			func(*testing.T, schema.AuditStore) uint64 { return mid }, firmbridge.TamperAltered},
		{"field altered in the sealed bytes", []string{fmt.Sprintf(`ALTER TABLE audit_events UPDATE canonical = replaceOne(canonical, '"client_addr":"10.1.2.3"', '"client_addr":"10.9.9.9"') WHERE chain = 0 AND seq = %d`, mid+1)},
			func(*testing.T, schema.AuditStore) uint64 { return mid + 1 }, firmbridge.TamperAltered},
		{"row deleted", []string{fmt.Sprintf("ALTER TABLE audit_events DELETE WHERE chain = 0 AND seq = %d", mid+2)},
			func(*testing.T, schema.AuditStore) uint64 { return mid + 2 }, firmbridge.TamperRemoved},
		{"last rows deleted", []string{fmt.Sprintf("ALTER TABLE audit_events DELETE WHERE chain = 0 AND seq > %d", last-3)},
			func(*testing.T, schema.AuditStore) uint64 { return last - 2 }, firmbridge.TamperRemoved},
		{"row inserted with a taken sequence number", []string{fmt.Sprintf(`INSERT INTO audit_events SELECT chain, seq, hash, canonical, source_offset,
			event_id, request_id, occurred_at, subject, role, 'BANK-FORGED', uscc, scopes, purpose, consent_id, decision, reason, status,
			client_addr, method, path FROM audit_events WHERE chain = 0 AND seq = %d`, mid+3)},
			func(*testing.T, schema.AuditStore) uint64 { return mid + 3 }, firmbridge.TamperInserted},
		{"row inserted after the end", []string{fmt.Sprintf(`INSERT INTO audit_events SELECT chain, seq + 10, hash, canonical, source_offset,
			event_id, request_id, occurred_at, subject, role, org, uscc, scopes, purpose, consent_id, decision, reason, status,
			client_addr, method, path FROM audit_events WHERE chain = 0 AND seq = %d`, last)},
			func(*testing.T, schema.AuditStore) uint64 { return last + 10 }, firmbridge.TamperInserted},
		{"two rows swapped", []string{
			"CREATE TABLE swap_tmp AS audit_events",
			fmt.Sprintf("INSERT INTO swap_tmp SELECT * FROM audit_events WHERE chain = 0 AND seq IN (%d, %d)", mid+4, mid+5),
			fmt.Sprintf("ALTER TABLE audit_events DELETE WHERE chain = 0 AND seq IN (%d, %d)", mid+4, mid+5),
			fmt.Sprintf(`INSERT INTO audit_events SELECT chain, %d - seq, hash, canonical, source_offset, event_id, request_id, occurred_at,
				subject, role, org, uscc, scopes, purpose, consent_id, decision, reason, status, client_addr, method, path FROM swap_tmp`, 2*mid+9)},
			func(*testing.T, schema.AuditStore) uint64 { return mid + 4 }, firmbridge.TamperReordered},
		{"digest altered", []string{fmt.Sprintf("ALTER TABLE audit_digests UPDATE last_hash = '%s' WHERE chain = 0 AND number = %d", strings.Repeat("0", 64), midDigest)},
			func(t *testing.T, a schema.AuditStore) uint64 { return digestAt(t, a, midDigest) }, firmbridge.TamperDigestSignature},
		{"digest deleted", []string{fmt.Sprintf("ALTER TABLE audit_digests DELETE WHERE chain = 0 AND number = %d", deleted)},
			func(t *testing.T, a schema.AuditStore) uint64 { return digestAt(t, a, deleted+1) }, firmbridge.TamperDigestChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyAuditTables(t, ctx, env.store)
			want := tc.seq(t, cp) // before the tampering, which may remove what it reads
			for _, q := range tc.tamper {
				mutate(t, ctx, cp.Store, q)
			}
			r, err := cp.VerifyAuditChain(ctx, chain, 0, 0, env.keys)
			if err != nil {
				t.Fatal(err)
			}
			if r.Failure == nil {
				t.Fatalf("tampering not detected: %+v", r)
			}
			if r.Failure.Seq != want || r.Failure.Kind != tc.kind {
				t.Fatalf("got %s at seq %d (%s), want %s at seq %d", r.Failure.Kind, r.Failure.Seq, r.Failure.Message, tc.kind, want)
			}
			if other, err := cp.VerifyAuditChain(ctx, 1, 0, 0, env.keys); err != nil || !other.OK() {
				t.Errorf("the untouched chain 1: %v %+v", err, other)
			}
		})
	}
}

// copyAuditTables copies the sealed tables into a new scratch database.
func copyAuditTables(t *testing.T, ctx context.Context, from *schema.Store) schema.AuditStore {
	t.Helper()
	to := testenv.Store(t)
	for _, table := range []string{"audit_events", "audit_digests", "audit_chain_state"} {
		if err := to.Conn().Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s SELECT * FROM %s.%s", to.Database(), table, from.Database(), table)); err != nil {
			t.Fatalf("copy %s: %v", table, err)
		}
	}
	return schema.AuditStore{Store: to}
}

// mutate runs a statement and, ALTER TABLE ... UPDATE/DELETE being
// asynchronous mutations, waits until they are done.
func mutate(t *testing.T, ctx context.Context, store *schema.Store, q string) {
	t.Helper()
	if err := store.Conn().Exec(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", store.Database()).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mutations still running after 30s", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// crashingStore writes through to the real store until told to crash: then
// the next batch's events are stored but not its checkpoint, the sealer's
// context is cut, and every later write fails, as if the process died
// between the two inserts.
type crashingStore struct {
	schema.AuditStore
	crashAfter int // batches
	crash      func()
	batches    atomic.Int64
	crashed    atomic.Bool
	lostAhead  atomic.Int64 // events stored past the checkpoint at the crash
}

var errCrashed = errors.New("crashed")

func (c *crashingStore) AppendSealed(ctx context.Context, st firmbridge.ChainState, events []firmbridge.SealedEvent) error {
	if c.crashed.Load() {
		return errCrashed
	}
	if c.batches.Add(1) > int64(c.crashAfter) && len(events) > 0 {
		if err := c.InsertSealedEvents(ctx, events); err != nil {
			return err
		}
		c.crashed.Store(true)
		c.lostAhead.Store(int64(len(events)))
		c.crash()
		return errCrashed
	}
	return c.AuditStore.AppendSealed(ctx, st, events)
}

func (c *crashingStore) WriteDigest(ctx context.Context, d *firmbridge.AuditDigest) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.AuditStore.WriteDigest(ctx, d)
}

func TestSealer_KilledMidStreamResumesExactlyOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := newSealerEnv(t)
	const batches, perBatch = 24, 125
	// The producer keeps writing while sealers come and go.
	var wg sync.WaitGroup
	wg.Add(1)
	var publishErr error
	msgs := auditMessages(t, 0, batches*perBatch, 0)
	go func() {
		defer wg.Done()
		for b := range batches {
			if publishErr = publish(ctx, env.kcfg, env.topic, msgs[b*perBatch:(b+1)*perBatch]); publishErr != nil {
				return
			}
			time.Sleep(400 * time.Millisecond)
		}
	}()

	crashes := 0
	for round := range 6 {
		if round%2 == 0 {
			// A crash between the events and the checkpoint.
			runCtx, kill := context.WithCancel(ctx)
			cs := &crashingStore{AuditStore: env.audit, crashAfter: 2, crash: kill}
			s := env.sealer(cs)
			s.DrainTimeout = 200 * time.Millisecond
			stop := start(runCtx, s)
			deadline := time.Now().Add(15 * time.Second)
			for !cs.crashed.Load() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			kill()
			if cs.crashed.Load() {
				crashes++
				t.Logf("round %d: crashed with %d events stored past the checkpoint", round, cs.lostAhead.Load())
			}
			continue
		}
		// A plain stop (SIGTERM) after a while.
		stop := start(ctx, env.sealer(env.audit))
		time.Sleep(time.Duration(500+round*200) * time.Millisecond)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if publishErr != nil {
		t.Fatal(publishErr)
	}
	if crashes == 0 {
		t.Fatal("no round crashed mid-stream; the test proved nothing")
	}
	stop := start(ctx, env.sealer(env.audit))
	env.waitSealed(t, ctx, batches*perBatch)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	env.checkDense(t, ctx, batches*perBatch)
	for c, r := range verifyAll(t, ctx, env.audit, env.keys) {
		if !r.OK() {
			t.Errorf("chain %d: %v", c, r.Failure)
		}
	}
}
