package kafka_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

// An event acknowledged before a catch-up time has always been seen by the
// time that catch-up is reported: the promise the consent cache relies on.
func TestConsentWatch_CatchUpCoversAcknowledgedEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kcfg := testenv.Kafka(t)
	topic := testenv.Topics(t, kcfg, "consent.events")[0]
	events := kafka.NewConsentEvents(kcfg, topic)
	defer events.Close()

	// An event from before the watch started is not replayed.
	if err := events.PublishConsentEvent(ctx, &firmbridge.ConsentEvent{EventID: "old", USCC: "OLD-FIRM", Type: firmbridge.ConsentEventGranted}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	type catchUp struct {
		asOf time.Time
		seen map[string]bool
	}
	catchUps := make(chan catchUp, 1000)
	watch := &kafka.ConsentWatch{Config: kcfg, Topic: topic, CheckEvery: 50 * time.Millisecond,
		OnEvent: func(uscc string) { mu.Lock(); seen[uscc] = true; mu.Unlock() },
		OnCaughtUp: func(asOf time.Time) {
			mu.Lock()
			snapshot := map[string]bool{}
			for k := range seen {
				snapshot[k] = true
			}
			mu.Unlock()
			select {
			case catchUps <- catchUp{asOf, snapshot}:
			default:
			}
		}}
	watchCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watch.Run(watchCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	}()
	select {
	case <-catchUps: // started and caught up
	case <-ctx.Done():
		t.Fatal("the watch never caught up")
	}

	for i, firm := range []string{"FIRM-A", "FIRM-B", "FIRM-C"} {
		if err := events.PublishConsentEvent(ctx, &firmbridge.ConsentEvent{EventID: firm, USCC: firm, Type: firmbridge.ConsentEventRevoked}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		for {
			var c catchUp
			select {
			case c = <-catchUps:
			case <-ctx.Done():
				t.Fatalf("event %d: no catch-up after it was acknowledged", i)
			}
			if !c.asOf.After(acked) {
				continue
			}
			if !c.seen[firm] {
				t.Fatalf("caught up as of %s, after %s's event was acknowledged at %s, without having seen it", c.asOf, firm, acked)
			}
			t.Logf("%s seen; caught up %s after its acknowledgement", firm, time.Since(acked).Round(time.Millisecond))
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["OLD-FIRM"] {
		t.Error("an event from before the watch started was replayed")
	}
}
