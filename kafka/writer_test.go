package kafka_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

// dyingBroker is a loopback proxy to the real broker that resets the
// first connections it accepts, as a broker does while kill -9 tears it
// down, and forwards the later ones.
type dyingBroker struct {
	ln     net.Listener
	resets atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   []net.Conn // forwarded, closed when the test ends
	closed bool
}

func (d *dyingBroker) track(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		c.Close()
	}
	d.open = append(d.open, c)
}

func (d *dyingBroker) close() {
	d.ln.Close()
	d.mu.Lock()
	d.closed = true
	for _, c := range d.open {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func startDyingBroker(t *testing.T, broker string, resetFirst int64) *dyingBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dyingBroker{ln: ln}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if d.resets.Add(1) <= resetFirst {
				c.(*net.TCPConn).SetLinger(0) // close with RST
				c.Close()
				continue
			}
			d.resets.Add(-1)
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer c.Close()
				d.track(c)
				b, err := net.DialTimeout("tcp", broker, 5*time.Second)
				if err != nil {
					return
				}
				defer b.Close()
				d.track(b)
				go func() { io.Copy(b, c); b.Close() }()
				io.Copy(c, b)
			}()
		}
	}()
	t.Cleanup(d.close)
	return d
}

func (d *dyingBroker) addr() string { return d.ln.Addr().String() }

// A write whose first metadata lookup meets a reset connection (the
// bootstrap broker is dying) is retried, and the record is written once.
// This is how the cluster test's producer failed in CI: kafka-go retries
// produce requests but returns a failed metadata lookup at once.
func TestWriter_RetriesLookupOnDyingBroker(t *testing.T) {
	ctx, kcfg, topic, dying, w := writerBehindDyingBroker(t, "writer.retry")
	start := time.Now()
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte("k"), Value: []byte("once")}); err != nil {
		t.Fatalf("write through a dying bootstrap broker: %v", err)
	}
	t.Logf("written %s after the reset", time.Since(start).Round(time.Millisecond))
	if n := dying.resets.Load(); n != 1 {
		t.Fatalf("the proxy reset %d connections, want 1: the test did not exercise the lookup failure", n)
	}
	if n := testenv.Messages(t, kcfg, topic); n != 1 {
		t.Errorf("%d messages in %s, want exactly 1", n, topic)
	}
}

// Without lookup retries the same write fails: the test above depends on
// them, not on kafka-go recovering by itself.
func TestWriter_LookupFailureWithoutRetries(t *testing.T) {
	ctx, kcfg, topic, _, w := writerBehindDyingBroker(t, "writer.noretry")
	w.LookupRetries = 0
	err := w.WriteMessages(ctx, kafkago.Message{Value: []byte("x")})
	if err == nil {
		t.Fatal("a write whose metadata lookup was reset succeeded without retries")
	}
	t.Logf("without retries: %v", err)
	if n := testenv.Messages(t, kcfg, topic); n != 0 {
		t.Errorf("%d messages in %s after a failed lookup, want 0", n, topic)
	}
}

// writerBehindDyingBroker returns a writer to a new topic whose only
// bootstrap address is a dyingBroker that resets its first connection.
func writerBehindDyingBroker(t *testing.T, topicBase string) (context.Context, kafka.Config, string, *dyingBroker, *kafka.Writer) {
	t.Helper()
	kcfg := testenv.Kafka(t)
	topic := testenv.Topics(t, kcfg, topicBase)[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dying := startDyingBroker(t, kcfg.Brokers[0], 1)
	w := kafka.NewWriter(kafka.Config{Brokers: []string{dying.addr()}}, topic)
	t.Cleanup(func() { w.Close() })
	return ctx, kcfg, topic, dying, w
}
