package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

// testRow goes to a scratch table made by the test.
type testRow struct {
	ID    string
	Value int64
}

func (r testRow) Table() string     { return "pipeline_test" }
func (r testRow) Columns() []string { return []string{"id", "value"} }
func (r testRow) Values() []any     { return []any{r.ID, r.Value} }

// decodeTestRow accepts {"id":..., "value":N} and rejects anything else.
func decodeTestRow(_ context.Context, msg kafkago.Message, _ time.Time) ([]firmbridge.Row, error) {
	var r struct {
		ID    string `json:"id"`
		Value *int64 `json:"value"`
	}
	if err := json.Unmarshal(msg.Value, &r); err != nil || r.ID == "" || r.Value == nil {
		return nil, &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "value", Message: "want {id, value}"}
	}
	return []firmbridge.Row{testRow{ID: r.ID, Value: *r.Value}}, nil
}

func TestPipeline_RowsPlusDeadLettersEqualRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "raw", "dlq")
	if err := store.Conn().Exec(ctx, "CREATE TABLE pipeline_test (id String, value Int64) ENGINE = ReplacingMergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}

	const total, badEvery = 2000, 20
	var msgs []kafkago.Message
	var wantSum int64
	for i := range total {
		v := fmt.Sprintf(`{"id":"r%d","value":%d}`, i, i)
		if i%badEvery == 0 {
			v = fmt.Sprintf(`{"id":"r%d","value":"not a number"}`, i)
		} else {
			wantSum += int64(i)
		}
		msgs = append(msgs, kafkago.Message{Key: []byte(strconv.Itoa(i % 7)), Value: []byte(v)})
	}
	w := kafka.NewWriter(kcfg, topics[0])
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// run consumes until want records were handled or wait passed.
	run := func(want int64, wait time.Duration) *ingest.Pipeline {
		p := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: topics[0], GroupID: "g-" + topics[0], DeadLetterTopic: topics[1],
			Decode: decodeTestRow, Sink: store, BatchRows: 300, BatchWait: 200 * time.Millisecond, Workers: 2}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		deadline := time.Now().Add(wait)
		for p.Stats().Rows.Load()+p.Stats().DeadLetters.Load() < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // would any extra record arrive?
		stop()
		if err := <-done; err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		return p
	}
	p := run(total, 60*time.Second)
	if rows, dead := p.Stats().Rows.Load(), p.Stats().DeadLetters.Load(); rows+dead != total || dead != total/badEvery {
		t.Fatalf("rows %d + dead letters %d, want %d + %d", rows, dead, total-total/badEvery, total/badEvery)
	}

	var n uint64
	var sum int64
	if err := store.Conn().QueryRow(ctx, "SELECT count(), sum(value) FROM pipeline_test FINAL").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != total-total/badEvery || sum != wantSum {
		t.Errorf("stored %d rows summing to %d, want %d summing to %d", n, sum, total-total/badEvery, wantSum)
	}

	t.Run("dead letters carry the original bytes and the reason", func(t *testing.T) {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: topics[1], GroupID: "check-" + topics[1],
			StartOffset: kafkago.FirstOffset, MaxWait: 200 * time.Millisecond})
		defer r.Close()
		readCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		m, err := r.ReadMessage(readCtx)
		if err != nil {
			t.Fatalf("read a dead letter: %v", err)
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[ingest.HeaderRejectCode] != firmbridge.RejectInvalidPayload || headers[ingest.HeaderRejectField] != "value" || headers[ingest.HeaderRejectMessage] == "" {
			t.Errorf("headers %v lack the reject reason", headers)
		}
		if !json.Valid(m.Value) || headers[ingest.HeaderSourceTopic] != topics[0] {
			t.Errorf("dead letter %q from %q, want the original JSON from %s", m.Value, headers[ingest.HeaderSourceTopic], topics[0])
		}
	})

	t.Run("committed offsets: a restart reads nothing again", func(t *testing.T) {
		// Long enough to join the group and fetch, had anything been uncommitted.
		again := run(1, 8*time.Second)
		if got := again.Stats().Messages.Load(); got != 0 {
			t.Errorf("restarted pipeline re-read %d messages, want 0", got)
		}
	})
}

// gatedSink holds the first insert until released and records how many
// inserts ran at once.
type gatedSink struct {
	release  chan struct{}
	first    sync.Once
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	calls    atomic.Int32
	rows     atomic.Int64
}

func (s *gatedSink) InsertRows(ctx context.Context, rows []firmbridge.Row) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if n > s.maxSeen.Load() {
		s.maxSeen.Store(n)
	}
	s.calls.Add(1)
	s.first.Do(func() {
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	})
	s.rows.Add(int64(len(rows)))
	return ctx.Err()
}

// The pipeline fetches and decodes the next batch while one is being
// stored, but never stores two at once, and commits nothing past a batch
// that is not stored.
func TestPipeline_StoresOneBatchWhileDecodingTheNext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "raw")
	const total, batchRows = 600, 100
	var msgs []kafkago.Message
	for i := range total {
		msgs = append(msgs, kafkago.Message{Value: fmt.Appendf(nil, `{"id":"r%d","value":%d}`, i, i)})
	}
	w := kafka.NewWriter(kcfg, topics[0])
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	sink := &gatedSink{release: make(chan struct{})}
	group := "g-" + topics[0]
	p := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: topics[0], GroupID: group,
		Decode: decodeTestRow, Sink: sink, BatchRows: batchRows, BatchWait: 5 * time.Second}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// While the first batch is held, the next one is fetched and decoded...
	waitUntil("the second batch to be fetched", func() bool { return p.Stats().Messages.Load() >= 2*batchRows })
	// ...but neither stored nor committed.
	time.Sleep(300 * time.Millisecond)
	if c := sink.calls.Load(); c != 1 {
		t.Errorf("%d inserts started while the first was held, want 1", c)
	}
	if off := committedOffset(t, ctx, kcfg, topics[0], group); off > 0 {
		t.Errorf("offset %d committed while the first batch was not stored", off)
	}
	close(sink.release)
	waitUntil("every row stored", func() bool { return sink.rows.Load() == total })
	waitUntil("every offset committed", func() bool { return committedOffset(t, ctx, kcfg, topics[0], group) == total })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	if m := sink.maxSeen.Load(); m != 1 {
		t.Errorf("%d inserts ran at once, want 1", m)
	}
}

// committedOffset is the sum of the group's committed offsets over the
// topic's partitions: the number of records committed.
func committedOffset(t *testing.T, ctx context.Context, kcfg kafka.Config, topic, group string) int64 {
	t.Helper()
	client := &kafkago.Client{Addr: kafkago.TCP(kcfg.Brokers...), Timeout: 5 * time.Second}
	resp, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1}}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	var sum int64
	for _, p := range resp.Topics[topic] {
		sum += max(p.CommittedOffset, 0)
	}
	return sum
}

// A batch of a tenth of BatchRows or more is stored once the stream goes
// idle, without waiting out BatchWait; a smaller one waits for the window,
// so a trickle of records does not become a stream of tiny inserts.
func TestPipeline_IdleBatchStoredBeforeItsWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "raw")
	w := kafka.NewWriter(kcfg, topics[0])
	defer w.Close()
	next := 0
	write := func(n int) {
		t.Helper()
		var msgs []kafkago.Message
		for range n {
			msgs = append(msgs, kafkago.Message{Value: fmt.Appendf(nil, `{"id":"r%d","value":%d}`, next, next)})
			next++
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	sink := &gatedSink{release: make(chan struct{})}
	close(sink.release)
	const batchRows, window = 100, 4 * time.Second
	p := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: topics[0], GroupID: "g-" + topics[0],
		Decode: decodeTestRow, Sink: sink, BatchRows: batchRows, BatchWait: window, IdleWait: 200 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	stored := func(n int64, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for sink.rows.Load() < n {
			if time.Since(start) > within {
				t.Fatalf("%d rows stored after %s, want %d", sink.rows.Load(), within, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	// A full batch first: the group has joined once it is stored.
	write(batchRows)
	stored(batchRows, time.Minute)

	// Half a batch, then nothing: stored when idle, well inside the window.
	write(batchRows / 2)
	if took := stored(batchRows+batchRows/2, window/2); took >= window/2 {
		t.Errorf("an idle half batch took %s to store, want well under the %s window", took, window)
	}

	// A few records: too few to store early, stored when the window ends.
	write(batchRows / 20)
	time.Sleep(window / 3)
	if got := sink.rows.Load(); got != batchRows+batchRows/2 {
		t.Errorf("%d rows stored %s after a trickle of %d records, want them to wait for the window", got, window/3, batchRows/20)
	}
	stored(batchRows+batchRows/2+batchRows/20, 2*window)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
}
