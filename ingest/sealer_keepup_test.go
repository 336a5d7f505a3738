package ingest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

// A chain vouches for itself with a digest only while it keeps up: it read
// records since its last digest, or it stands at the partition's end. A
// reader that reaches no broker has neither, and the digest is withheld.
func TestSealer_DigestOnlyWhileKeepingUp(t *testing.T) {
	now := time.Now()
	s := &Sealer{Logger: slog.Default(), Now: func() time.Time { return now }}
	s.defaults()
	c := &chainSealer{s: s, log: s.Logger}
	ctx := context.Background()
	later := func() { now = now.Add(lagRecheck) } // past the wait between two asks

	// Port 1 on loopback: nothing listens, so the partition's end is unknown.
	lost := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Partition: 0})
	defer lost.Close()
	if c.keepingUp(ctx, lost) {
		t.Error("a chain that read nothing and cannot reach its partition keeps up")
	}
	// Withholding, the loop asks every turn: the partition's end is asked
	// for again only after lagRecheck.
	if c.keepingUp(ctx, lost) || c.lagChecks != 1 {
		t.Errorf("asked for the partition's end %d times in one wait, want once", c.lagChecks)
	}
	later()
	if c.keepingUp(ctx, lost) || c.lagChecks != 2 {
		t.Errorf("asked for the partition's end %d times after the wait, want twice", c.lagChecks)
	}
	c.fetched = true
	if !c.keepingUp(ctx, lost) {
		t.Error("a chain that read records since its last digest does not keep up")
	}

	// On the real broker: at the end of the partition it keeps up, behind
	// it (one record unread) it does not.
	kcfg := testenv.Kafka(t)
	topic := testenv.Topics(t, kcfg, "keepup")[0]
	w := kafka.NewWriter(kcfg, topic)
	defer w.Close()
	if err := w.WriteMessages(ctx, kafkago.Message{Partition: 0, Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	parts, err := kafka.Partitions(ctx, kcfg, topic)
	if err != nil {
		t.Fatal(err)
	}
	var written int
	for _, p := range parts {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		c.fetched = false
		later()
		behind := !c.keepingUp(ctx, r)
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, ferr := r.FetchMessage(fctx)
		cancel()
		if ferr == nil { // the partition the record went to
			written++
			if !behind {
				t.Errorf("partition %d: one record unread, yet the chain keeps up", p.ID)
			}
			later()
			if !c.keepingUp(ctx, r) {
				t.Errorf("partition %d: every record read, yet the chain does not keep up", p.ID)
			}
		} else if behind {
			t.Errorf("partition %d: empty, yet the chain does not keep up", p.ID)
		}
		r.Close()
	}
	if written != 1 {
		t.Fatalf("the record was read from %d partitions, want 1", written)
	}
}
