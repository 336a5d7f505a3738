package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

// TestReplay_AfterConnectorFix: records rejected by a buggy connector are
// replayed after the fix and stored; a second replay sends nothing again.
func TestReplay_AfterConnectorFix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "raw", "dlq")
	if err := store.Conn().Exec(ctx, "CREATE TABLE pipeline_test (id String, value Int64) ENGINE = ReplacingMergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	// The "connector" rejects negative values until it is fixed.
	var fixed atomic.Bool
	decode := func(_ context.Context, msg kafkago.Message, _ time.Time) ([]firmbridge.Row, error) {
		var env struct {
			RecordID string `json:"record_id"`
			Value    int64  `json:"value"`
		}
		if err := json.Unmarshal(msg.Value, &env); err != nil {
			return nil, &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Message: err.Error()}
		}
		if env.Value < 0 && !fixed.Load() {
			return nil, &firmbridge.Reject{Code: firmbridge.RejectImplausible, Field: "value", Message: "negative"}
		}
		return []firmbridge.Row{testRow{ID: env.RecordID, Value: env.Value}}, nil
	}
	var msgs []kafkago.Message
	for i := range 300 {
		v := int64(i)
		source := "test.good"
		if i%3 == 0 {
			v, source = -v-1, "test.fixme"
		}
		body := fmt.Sprintf(`{"record_id":"r%d","source":%q,"value":%d}`, i, source, v)
		msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprint(i % 5)), Value: []byte(body)})
	}
	// Another source's dead letter, and one that is not an envelope at all.
	msgs = append(msgs, kafkago.Message{Value: []byte(`{"record_id":"x1","source":"test.other","value":-5}`)},
		kafkago.Message{Value: []byte(`not json`)})
	w := kafka.NewWriter(kcfg, topics[0])
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	p := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: topics[0], GroupID: "g-" + topics[0], DeadLetterTopic: topics[1],
		Decode: decode, Sink: store, BatchWait: 200 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	}()
	waitFor(t, func() bool { return p.Stats().Rows.Load()+p.Stats().DeadLetters.Load() >= 302 })
	if got := p.Stats().DeadLetters.Load(); got != 102 {
		t.Fatalf("dead letters %d, want 102 (100 negative, 1 other source, 1 not JSON)", got)
	}

	fixed.Store(true)
	replay := &ingest.Replay{Brokers: kcfg.Brokers, DeadLetterTopic: topics[1], RawTopic: topics[0], Source: "test.fixme"}
	st, err := replay.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ingest.ReplayStats{Read: 102, Replayed: 100, OtherSrc: 1, Unreadable: 1}); st != want {
		t.Errorf("replay stats %+v, want %+v", st, want)
	}
	waitFor(t, func() bool { return p.Stats().Rows.Load() >= 300 })
	var n uint64
	if err := store.Conn().QueryRow(ctx, "SELECT count() FROM pipeline_test FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 300 {
		t.Errorf("stored %d rows after replay, want 300", n)
	}

	again, err := replay.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Read != 0 || again.Replayed != 0 {
		t.Errorf("second replay %+v, want nothing read (progress is committed)", again)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
