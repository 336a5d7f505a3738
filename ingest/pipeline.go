// Package ingest moves records from Kafka into ClickHouse: consumer groups
// per topic, batching by rows and by time, dead letters for records that can
// never be accepted, and offsets committed only after ClickHouse
// acknowledged every row before them.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/kafka"
)

// Sink stores canonical rows. It returns only after every row is stored.
// schema.Store satisfies it.
type Sink interface {
	InsertRows(ctx context.Context, rows []firmbridge.Row) error
}

// Decoder turns one Kafka message into rows. A *firmbridge.Reject means the
// record can never be accepted: it is dead-lettered and the stream moves on.
type Decoder func(ctx context.Context, msg kafkago.Message, ingestedAt time.Time) ([]firmbridge.Row, error)

// Pipeline consumes one topic with a consumer group and writes its rows.
type Pipeline struct {
	Brokers         []string
	Topic           string
	GroupID         string
	DeadLetterTopic string
	Decode          Decoder
	Sink            Sink
	Workers         int           // readers in the group; default 1
	BatchRows       int           // flush at this many rows; default 50000
	BatchWait       time.Duration // or this long after the first message; default 1s
	// IdleWait stores a batch of at least a tenth of BatchRows once no
	// record arrived for this long, without waiting out BatchWait: the
	// end of a burst or of a backlog is stored at once, while a trickle of
	// records still waits for the window, so ClickHouse still gets few,
	// large inserts; default 250ms.
	IdleWait time.Duration
	// DecodeWorkers normalize fetched records in parallel, since
	// normalization, not Kafka or ClickHouse, is the costly step; default
	// GOMAXPROCS. Results keep the records' order.
	DecodeWorkers int
	Logger        *slog.Logger
	Now           func() time.Time
	Metrics       *Metrics // optional

	stats Stats
}

// Stats counts what a pipeline did since it started.
type Stats struct {
	Messages    atomic.Int64
	Rows        atomic.Int64
	DeadLetters atomic.Int64
	Batches     atomic.Int64
	Retries     atomic.Int64
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

func (p *Pipeline) defaults() {
	if p.Workers <= 0 {
		p.Workers = 1
	}
	if p.BatchRows <= 0 {
		p.BatchRows = 50000
	}
	if p.BatchWait <= 0 {
		p.BatchWait = time.Second
	}
	if p.IdleWait <= 0 {
		p.IdleWait = 250 * time.Millisecond
	}
	if p.DecodeWorkers <= 0 {
		p.DecodeWorkers = runtime.GOMAXPROCS(0)
	}
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
}

// Run consumes until ctx is cancelled, then flushes and commits what it
// holds and returns nil. It returns an error only if it cannot go on.
func (p *Pipeline) Run(ctx context.Context) error {
	p.defaults()
	if p.Decode == nil || p.Sink == nil || p.Topic == "" || p.GroupID == "" {
		return errors.New("ingest: pipeline needs a topic, a group, a decoder and a sink")
	}
	var dlq *kafka.Writer
	if p.DeadLetterTopic != "" {
		dlq = kafka.NewWriter(kafka.Config{Brokers: p.Brokers}, p.DeadLetterTopic)
		defer dlq.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, p.Workers)
	for i := range p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.worker(ctx, i, dlq)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

type batch struct {
	msgs    []kafkago.Message
	pending []kafkago.Message // fetched, not yet decoded
	rows    []firmbridge.Row
	dead    []kafkago.Message
	started time.Time
	last    time.Time // when the newest message arrived
}

func (p *Pipeline) worker(ctx context.Context, id int, dlq *kafka.Writer) error {
	reader := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        p.Brokers,
		GroupID:        p.GroupID,
		Topic:          p.Topic,
		MinBytes:       1,
		MaxBytes:       16 << 20,
		MaxWait:        250 * time.Millisecond,
		StartOffset:    kafkago.FirstOffset,
		CommitInterval: 0, // commit synchronously, only when told
		QueueCapacity:  1000,
		// A crashed worker's partitions move to the others after the
		// session timeout; kafka-go's 30 s default stalls them too long.
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: time.Second,
	})
	defer reader.Close()
	log := p.Logger.With("topic", p.Topic, "group", p.GroupID, "worker", id)
	log.Info("consuming")

	// Stores run with drainCtx: a SIGTERM gives the batch being stored up
	// to drainTimeout to reach ClickHouse and commit, instead of
	// abandoning it mid-insert.
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(drainTimeout, cancelDrain) })
	defer stopDrain()

	// One batch is stored in the background while the next is fetched and
	// decoded: normalizing and inserting overlap instead of taking turns.
	// Never more than one, so memory stays bounded and offsets are
	// committed in order: a batch starts storing only after the one before
	// it is in ClickHouse and committed.
	var stored chan error
	waitStored := func() error {
		if stored == nil {
			return nil
		}
		err := <-stored
		stored = nil
		return err
	}
	defer func() { _ = waitStored() }()

	var b batch
	var window fetchWindow
	defer window.close()
	for {
		deadline := b.started.Add(p.BatchWait)
		switch {
		case len(b.msgs) == 0:
			deadline = time.Now().Add(p.BatchWait)
		case len(b.rows)+len(b.pending) >= p.BatchRows/10:
			// The idle deadline moves in steps of an eighth of IdleWait, so
			// that the fetch context is not made anew for every message.
			step := p.IdleWait / 8
			if idle := b.last.Truncate(step).Add(p.IdleWait + step); idle.Before(deadline) {
				deadline = idle
			}
		}
		msg, err := reader.FetchMessage(window.until(ctx, deadline))
		switch {
		case err == nil:
			if len(b.msgs) == 0 {
				b.started = time.Now()
				if b.msgs == nil {
					// Sized for a full batch once, instead of grown by
					// copying at every doubling (about 2% of the CPU at 100k
					// messages/s).
					b.msgs = make([]kafkago.Message, 0, min(p.BatchRows, maxPreallocated))
					b.pending = make([]kafkago.Message, 0, decodeChunk)
					b.rows = make([]firmbridge.Row, 0, min(p.BatchRows, maxPreallocated)+decodeChunk)
				}
			}
			p.add(ctx, &b, msg)
			b.last = time.Now()
			// A record not decoded yet counts as one row: decoding waits
			// for a chunk of decodeChunk records, and a batch must not.
			if len(b.rows)+len(b.pending) < p.BatchRows && b.last.Sub(b.started) < p.BatchWait {
				continue
			}
		case ctx.Err() != nil:
			// Shutting down: store and commit what we hold, within
			// drainTimeout; the batch in flight first, since storing the
			// next without it would commit offsets past records never stored.
			err := waitStored()
			if err == nil {
				err = p.flush(drainCtx, id, log, reader, dlq, &b)
			}
			log.Info("stopped", "messages", p.stats.Messages.Load(), "rows", p.stats.Rows.Load(), "dead_letters", p.stats.DeadLetters.Load())
			return err
		case errors.Is(err, context.DeadlineExceeded):
			// The batch window closed, or the batch went idle, with no new
			// message.
		default:
			log.Warn("fetch failed; retrying", "err", err)
			if !sleep(ctx, time.Second) {
				continue
			}
		}
		if len(b.msgs) > 0 {
			p.decodePending(ctx, &b)
			if err := waitStored(); err != nil {
				if ctx.Err() != nil {
					// Not committed: the next owner of these partitions re-reads
					// them, and the rows already written replace themselves.
					log.Info("stopped with an unstored batch", "err", err)
					return nil
				}
				return err
			}
			stored = make(chan error, 1)
			go func(b batch) { stored <- p.flush(drainCtx, id, log, reader, dlq, &b) }(b)
			b = batch{}
		}
	}
}

// fetchWindow is the context fetches wait with until a batch window
// closes. One per window, not one per message: a context with a deadline
// costs a timer and several allocations, which at 100k messages/s was 4%
// of the process's CPU.
type fetchWindow struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// until returns a context of parent that ends at deadline, the one it
// returned before if that has the same deadline and has not ended.
func (w *fetchWindow) until(parent context.Context, deadline time.Time) context.Context {
	if w.ctx == nil || !deadline.Equal(w.deadline) || w.ctx.Err() != nil {
		w.close()
		w.ctx, w.cancel = context.WithDeadline(parent, deadline)
		w.deadline = deadline
	}
	return w.ctx
}

func (w *fetchWindow) close() {
	if w.cancel != nil {
		w.cancel()
	}
}

// drainTimeout bounds how long a stopping pipeline keeps trying to store
// and commit what it has fetched.
const drainTimeout = 30 * time.Second

// decodeChunk is how many fetched records are normalized together.
const decodeChunk = 1024

// maxPreallocated bounds the messages and rows a new batch reserves room
// for, whatever BatchRows says.
const maxPreallocated = 100_000

func (p *Pipeline) add(ctx context.Context, b *batch, msg kafkago.Message) {
	b.msgs = append(b.msgs, msg)
	b.pending = append(b.pending, msg)
	p.stats.Messages.Add(1)
	if len(b.pending) >= decodeChunk {
		p.decodePending(ctx, b)
	}
}

// decodePending normalizes the pending records on DecodeWorkers goroutines
// and appends their rows and dead letters in record order.
func (p *Pipeline) decodePending(ctx context.Context, b *batch) {
	n := len(b.pending)
	if n == 0 {
		return
	}
	type result struct {
		rows []firmbridge.Row
		err  error
	}
	results := make([]result, n)
	now := p.Now()
	workers := min(p.DecodeWorkers, (n+63)/64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				results[i].rows, results[i].err = p.Decode(ctx, b.pending[i], now)
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err == nil {
			b.rows = append(b.rows, r.rows...)
			continue
		}
		var rej *firmbridge.Reject
		if !errors.As(r.err, &rej) {
			// A connector failing in an unforeseen way must not stall the
			// partition: the record is kept in the dead-letter topic instead.
			rej = &firmbridge.Reject{Code: "connector_error", Message: r.err.Error()}
		}
		b.dead = append(b.dead, deadLetter(b.pending[i], rej, now))
	}
	b.pending = b.pending[:0]
}

// flush writes dead letters, then rows, then commits the batch's offsets.
// Every step is retried with back-off while ctx lives; no offset moves
// before ClickHouse and the dead-letter topic hold everything before it.
func (p *Pipeline) flush(ctx context.Context, id int, log *slog.Logger, reader *kafkago.Reader, dlq *kafka.Writer, b *batch) error {
	if len(b.msgs) == 0 {
		return nil
	}
	p.decodePending(ctx, b)
	start := time.Now()
	if len(b.dead) > 0 {
		if dlq == nil {
			return fmt.Errorf("ingest: %d records rejected on %s and no dead-letter topic configured", len(b.dead), p.Topic)
		}
		if err := p.retry(ctx, log, "write dead letters", func() error { return dlq.WriteMessages(ctx, b.dead...) }); err != nil {
			return err
		}
	}
	if len(b.rows) > 0 {
		if err := p.retry(ctx, log, "insert rows", func() error { return p.Sink.InsertRows(ctx, b.rows) }); err != nil {
			return err
		}
	}
	if err := p.retry(ctx, log, "commit offsets", func() error { return reader.CommitMessages(ctx, b.msgs...) }); err != nil {
		return err
	}
	p.stats.Rows.Add(int64(len(b.rows)))
	p.stats.DeadLetters.Add(int64(len(b.dead)))
	p.stats.Batches.Add(1)
	if m := p.Metrics; m != nil {
		m.Records.WithLabelValues(p.Topic, "stored").Add(float64(len(b.msgs) - len(b.dead)))
		m.Records.WithLabelValues(p.Topic, "dead_letter").Add(float64(len(b.dead)))
		m.Rows.WithLabelValues(p.Topic).Add(float64(len(b.rows)))
		m.BatchRows.WithLabelValues(p.Topic).Observe(float64(len(b.rows)))
		m.BatchSeconds.WithLabelValues(p.Topic).Observe(time.Since(start).Seconds())
		m.Lag.WithLabelValues(p.Topic, strconv.Itoa(id)).Set(float64(reader.Stats().Lag)) // the lag of the partition read last
	}
	log.Debug("batch stored", "messages", len(b.msgs), "rows", len(b.rows), "dead_letters", len(b.dead), "took", time.Since(start))
	*b = batch{}
	return nil
}

func (p *Pipeline) retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ingest: %s: %w", what, err)
		}
		p.stats.Retries.Add(1)
		if p.Metrics != nil {
			p.Metrics.Retries.WithLabelValues(p.Topic, what).Inc()
		}
		log.Warn("retrying", "what", what, "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("ingest: %s: %w", what, err)
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// Dead-letter headers: the reason travels with the original bytes.
const (
	HeaderRejectCode    = "firmbridge-reject-code"
	HeaderRejectField   = "firmbridge-reject-field"
	HeaderRejectMessage = "firmbridge-reject-message"
	HeaderSourceTopic   = "firmbridge-source-topic"
	HeaderSourceOffset  = "firmbridge-source-offset"
	HeaderRejectedAt    = "firmbridge-rejected-at"
)

func deadLetter(msg kafkago.Message, rej *firmbridge.Reject, now time.Time) kafkago.Message {
	return kafkago.Message{
		Key:   msg.Key,
		Value: msg.Value,
		Headers: append(append([]kafkago.Header(nil), msg.Headers...),
			kafkago.Header{Key: HeaderRejectCode, Value: []byte(rej.Code)},
			kafkago.Header{Key: HeaderRejectField, Value: []byte(rej.Field)},
			kafkago.Header{Key: HeaderRejectMessage, Value: []byte(rej.Message)},
			kafkago.Header{Key: HeaderSourceTopic, Value: []byte(msg.Topic)},
			kafkago.Header{Key: HeaderSourceOffset, Value: []byte(strconv.Itoa(msg.Partition) + ":" + strconv.FormatInt(msg.Offset, 10))},
			kafkago.Header{Key: HeaderRejectedAt, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
		),
	}
}
