package kafka

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Writer is a kafka-go writer whose WriteMessages also rides out the
// seconds after a broker dies. kafka-go retries a produce request that
// fails, but not the metadata lookup that comes before it: the transport
// keeps the error of its last metadata refresh (its control connection
// to the dead broker was reset) until the next refresh succeeds, up to
// MetadataTTL later, and every write in between fails at once with
// "connection reset by peer" although nothing was sent.
type Writer struct {
	*kafkago.Writer
	// LookupRetries bounds the retries of a write that failed before
	// sending anything; the back-off doubles from 100 ms up to 1 s.
	LookupRetries int
}

// NewWriter returns a producer that waits for acks from all in-sync
// replicas and keys messages to partitions by hash, so one firm's records
// stay ordered. The short batch timeout keeps synchronous writes fast while
// still batching concurrent ones. Its retries outlast a leader failover:
// when a broker dies, the partitions it led take new leaders once the
// controller fences it (broker.session.timeout.ms: 9 s by default, 3 s in
// deploy/local's cluster) and the writer's metadata is refreshed (2 s), so
// 15 attempts, backing off up to 1 s, span about 12 s. Callers that must
// answer sooner bound a write with their context (the audit log: 5 s).
func NewWriter(cfg Config, topic string) *Writer {
	return &Writer{
		Writer: &kafkago.Writer{
			Addr:            kafkago.TCP(cfg.Brokers...),
			Topic:           topic,
			Balancer:        &kafkago.Hash{},
			RequiredAcks:    kafkago.RequireAll,
			BatchTimeout:    2 * time.Millisecond,
			BatchSize:       1000,
			MaxAttempts:     15,
			WriteBackoffMin: 100 * time.Millisecond,
			WriteBackoffMax: time.Second,
			WriteTimeout:    10 * time.Second,
			Compression:     kafkago.Lz4,
			// A transport of its own: kafka-go's shared default caches topic
			// metadata for seconds, so a writer would not see a topic that was
			// created after another writer in the process looked.
			Transport: &kafkago.Transport{MetadataTTL: 2 * time.Second},
		},
		LookupRetries: 15,
	}
}

// WriteMessages writes msgs as kafka-go's does, and retries the whole call
// when it failed before sending anything with an error that passes (a
// connection to a dead broker, a leader being elected). kafka-go's
// synchronous WriteMessages returns WriteErrors once any message was handed
// to a batch, and other errors only before: so a retry never sends a
// message twice.
func (w *Writer) WriteMessages(ctx context.Context, msgs ...kafkago.Message) error {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := w.Writer.WriteMessages(ctx, msgs...)
		var sent kafkago.WriteErrors
		if err == nil || errors.As(err, &sent) || ctx.Err() != nil || attempt >= w.LookupRetries || !passing(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// passing reports whether err is one a retry can outlast: a broken or
// refused connection, or a Kafka error that Kafka itself calls temporary
// (no leader yet, broker not available).
func passing(err error) bool {
	var temporary interface{ Temporary() bool }
	if errors.As(err, &temporary) && temporary.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}
