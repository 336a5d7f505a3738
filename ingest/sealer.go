package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/kafka"
)

// SealStore keeps sealed events, each chain's checkpoint and the signed
// digests; schema.AuditStore satisfies it.
type SealStore interface {
	// ChainHead returns a chain's checkpoint and its newest digest (nil if none).
	ChainHead(ctx context.Context, chain uint32) (firmbridge.ChainState, *firmbridge.AuditDigest, error)
	// AppendSealed stores events, then the checkpoint state after them.
	AppendSealed(ctx context.Context, state firmbridge.ChainState, events []firmbridge.SealedEvent) error
	WriteDigest(ctx context.Context, d *firmbridge.AuditDigest) error
}

// Sealer consumes audit.access.v1 and stores every access event in a hash
// chain, one chain per topic partition (chain id = partition number), with
// exactly-once effect, and signs a digest of each chain at an interval and
// when it stops.
//
// Exactly once: a partition is sealed by one member of the consumer group
// at a time, which reads from the offset in the chain's checkpoint in
// ClickHouse, never from the group's committed offsets (committed only so
// that lag shows in the usual tools). Sealing is a pure function of the
// checkpoint and the Kafka records, so after a crash the records past the
// checkpoint get the same sequence numbers and hashes again, and the rows
// written twice replace themselves (their key includes chain and seq).
// The checkpoint is written only after the events before it, and a digest
// only after the checkpoint it covers.
type Sealer struct {
	Brokers         []string
	Topic           string
	GroupID         string
	DeadLetterTopic string // malformed events go here with the reason in headers
	Store           SealStore
	SigningKey      ed25519.PrivateKey
	KeyID           string
	DigestInterval  time.Duration // default 10s
	BatchRows       int           // store at this many events; default 5000
	BatchWait       time.Duration // or this long after the first; default 500ms
	DrainTimeout    time.Duration // how long a stopping sealer keeps storing; default 30s
	Logger          *slog.Logger
	Now             func() time.Time
	Metrics         *SealerMetrics // optional

	stats SealerStats
}

// SealerStats counts what a sealer did since it started.
type SealerStats struct {
	Messages    atomic.Int64
	Sealed      atomic.Int64
	DeadLetters atomic.Int64
	Digests     atomic.Int64
	Retries     atomic.Int64
}

// Stats returns the sealer's counters.
func (s *Sealer) Stats() *SealerStats { return &s.stats }

func (s *Sealer) defaults() {
	if s.DigestInterval <= 0 {
		s.DigestInterval = 10 * time.Second
	}
	if s.BatchRows <= 0 {
		s.BatchRows = 5000
	}
	if s.BatchWait <= 0 {
		s.BatchWait = 500 * time.Millisecond
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = drainTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// Run seals until ctx is cancelled, then stores what it holds, signs a
// last digest of each chain and returns nil. It returns an error only if it
// cannot go on (a chain's stored state is inconsistent).
func (s *Sealer) Run(ctx context.Context) error {
	s.defaults()
	if s.Store == nil || s.Topic == "" || s.GroupID == "" || len(s.Brokers) == 0 {
		return errors.New("sealer: brokers, a topic, a group and a store are required")
	}
	if len(s.SigningKey) != ed25519.PrivateKeySize || s.KeyID == "" {
		return errors.New("sealer: an Ed25519 signing key and its key id are required")
	}
	if s.DeadLetterTopic == "" {
		return errors.New("sealer: a dead-letter topic is required")
	}
	dlq := kafka.NewWriter(kafka.Config{Brokers: s.Brokers}, s.DeadLetterTopic)
	defer dlq.Close()

	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: s.GroupID, Brokers: s.Brokers, Topics: []string{s.Topic},
		StartOffset: kafkago.FirstOffset, WatchPartitionChanges: true,
		// A crashed sealer's chains wait for its session to expire; kafka-go's
		// 30 s default stalls the audit log too long.
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
		JoinGroupBackoff: time.Second,
	})
	if err != nil {
		return fmt.Errorf("sealer: consumer group %s: %w", s.GroupID, err)
	}
	defer group.Close()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		fatalMu  sync.Mutex
		fatalErr error
	)
	log := s.Logger.With("topic", s.Topic, "group", s.GroupID)
	for {
		gen, err := group.Next(runCtx)
		if err != nil {
			if runCtx.Err() != nil {
				break
			}
			log.Warn("consumer group; rejoining", "err", err)
			if !sleep(runCtx, time.Second) {
				break
			}
			continue
		}
		log.Info("sealing", "generation", gen.ID, "partitions", len(gen.Assignments[s.Topic]))
		for _, pa := range gen.Assignments[s.Topic] {
			wg.Add(1)
			gen.Start(func(genCtx context.Context) {
				defer wg.Done()
				// Both the end of the generation (a rebalance) and the end of
				// the run stop a chain; either way it drains first.
				pctx, stop := context.WithCancel(runCtx)
				defer stop()
				unwatch := context.AfterFunc(genCtx, stop)
				defer unwatch()
				if err := s.sealPartition(pctx, gen, pa.ID, dlq); err != nil {
					fatalMu.Lock()
					fatalErr = errors.Join(fatalErr, err)
					fatalMu.Unlock()
					cancel()
				}
			})
		}
	}
	wg.Wait()
	fatalMu.Lock()
	defer fatalMu.Unlock()
	return fatalErr
}

// chainSealer is the state of one partition's chain in one generation.
type chainSealer struct {
	s       *Sealer
	chain   uint32
	log     *slog.Logger
	gen     *kafkago.Generation
	dlq     *kafka.Writer
	stored  firmbridge.ChainState // as the checkpoint in ClickHouse has it
	working firmbridge.ChainState // stored plus the batch in hand
	digest  *firmbridge.AuditDigest
	// digestAt is when the newest digest was written, by this process's
	// clock; zero makes the first digest due at once.
	digestAt time.Time

	// fetched says a record came from Kafka since the last digest.
	fetched bool
	// withheldAt is when a digest was last withheld (logged once per interval).
	withheldAt time.Time
	// nextLagCheck is when keepingUp may ask for the partition's end again
	// after it could not vouch for the chain; lagChecks counts the asks.
	nextLagCheck time.Time
	lagChecks    int

	msgs    int
	events  []firmbridge.SealedEvent
	dead    []kafkago.Message
	started time.Time
}

func (s *Sealer) sealPartition(ctx context.Context, gen *kafkago.Generation, partition int, dlq *kafka.Writer) error {
	chain := uint32(partition)
	log := s.Logger.With("topic", s.Topic, "chain", chain)
	// Stores run with drainCtx: a stopping sealer gets DrainTimeout to store
	// the batch in hand and sign a last digest.
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(s.DrainTimeout, cancelDrain) })
	defer stopDrain()

	c := &chainSealer{s: s, chain: chain, log: log, gen: gen, dlq: dlq}
	if err := s.retry(ctx, log, "read chain state", func() error {
		st, d, err := s.Store.ChainHead(ctx, chain)
		if err != nil {
			return err
		}
		// Digests are written only after the checkpoint they cover: one
		// beyond it means the tables were altered, and sealing on would
		// fork the chain.
		if st.Chain != chain || (d != nil && (d.Chain != chain || d.LastSeq > st.LastSeq)) {
			return &inconsistentError{fmt.Errorf("sealer: chain %d: the checkpoint (seq %d) is behind the newest digest; refusing to seal", chain, st.LastSeq)}
		}
		c.stored, c.working, c.digest = st, st, d
		return nil
	}); err != nil {
		var inc *inconsistentError
		if errors.As(err, &inc) {
			return err
		}
		return nil // stopped before the state could be read
	}
	start := c.stored.NextOffset
	if start < 0 {
		start = kafkago.FirstOffset
	}
	reader := kafkago.NewReader(kafkago.ReaderConfig{Brokers: s.Brokers, Topic: s.Topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 1000})
	defer reader.Close()
	if err := reader.SetOffset(start); err != nil {
		return fmt.Errorf("sealer: chain %d: seek to offset %d: %w", chain, start, err)
	}
	log.Info("resuming chain", "seq", c.stored.LastSeq, "offset", start)
	if s.Metrics != nil {
		s.Metrics.lastSeq.WithLabelValues(chainLabel(chain)).Set(float64(c.stored.LastSeq))
		if c.digest != nil {
			s.Metrics.digested(chain, c.digest.SignedAt)
		}
	}

	for {
		wait := s.BatchWait
		if c.msgs > 0 {
			wait = time.Until(c.started.Add(s.BatchWait))
		}
		fetchCtx, cancel := context.WithTimeout(ctx, max(wait, time.Millisecond))
		msg, err := reader.FetchMessage(fetchCtx)
		cancel()
		switch {
		case err == nil:
			c.fetched = true
			c.add(msg)
			if len(c.events) < s.BatchRows && time.Since(c.started) < s.BatchWait {
				continue
			}
		case ctx.Err() != nil:
			err := c.flush(drainCtx)
			if err == nil {
				err = c.sign(drainCtx)
			}
			if err != nil {
				// Nothing is lost: the next owner of the chain resumes from
				// the checkpoint and seals the same records again.
				log.Warn("stopped without storing everything", "err", err)
			}
			log.Info("stopped", "seq", c.stored.LastSeq, "offset", c.stored.NextOffset)
			return nil
		case errors.Is(err, context.DeadlineExceeded):
		default:
			log.Warn("fetch failed; retrying", "err", err)
			sleep(ctx, time.Second)
		}
		if c.msgs > 0 {
			if err := c.flush(ctx); err != nil {
				continue // only when stopping; the next turn drains
			}
		}
		if s.Now().Sub(c.digestAt) >= s.DigestInterval && c.keepingUp(ctx, reader) {
			_ = c.sign(ctx) // fails only when stopping
		}
	}
}

type inconsistentError struct{ error }

func (e *inconsistentError) Unwrap() error { return e.error }

// add seals one record, or sets it aside for the dead-letter topic.
func (c *chainSealer) add(msg kafkago.Message) {
	s := c.s
	if next := c.working.NextOffset; next >= 0 && msg.Offset < next {
		return // already sealed; a reader never goes back, but the chain must not fork if one did
	}
	s.stats.Messages.Add(1)
	if c.msgs == 0 {
		c.started = time.Now()
	}
	c.msgs++
	if next := c.working.NextOffset; next >= 0 && msg.Offset > next {
		// Only retention (or compaction) removes records: events lost before
		// they were sealed. The chain cannot have them; say so loudly.
		c.log.Error("audit records missing from the topic before they were sealed", "from_offset", next, "to_offset", msg.Offset-1)
	}
	e, err := firmbridge.DecodeAuditMessage(msg.Value)
	var ev firmbridge.SealedEvent
	if err == nil {
		ev, err = c.working.Seal(e, msg.Offset)
	}
	if err != nil {
		var rej *firmbridge.Reject
		if !errors.As(err, &rej) {
			rej = &firmbridge.Reject{Code: "sealer_error", Message: err.Error()}
		}
		c.dead = append(c.dead, deadLetter(msg, rej, s.Now()))
		c.working.NextOffset = msg.Offset + 1
		return
	}
	c.events = append(c.events, ev)
}

// flush writes dead letters, then events and the checkpoint; every step is
// retried while ctx lives. It fails only when ctx ends first.
func (c *chainSealer) flush(ctx context.Context) error {
	if c.msgs == 0 {
		return nil
	}
	s := c.s
	start := time.Now()
	if len(c.dead) > 0 {
		if err := s.retry(ctx, c.log, "write dead letters", func() error { return c.dlq.WriteMessages(ctx, c.dead...) }); err != nil {
			return err
		}
	}
	if err := s.retry(ctx, c.log, "store sealed events", func() error { return s.Store.AppendSealed(ctx, c.working, c.events) }); err != nil {
		return err
	}
	c.stored = c.working
	// Informational only: the sealer resumes from its checkpoint.
	if err := c.gen.CommitOffsets(map[string]map[int]int64{s.Topic: {int(c.chain): c.stored.NextOffset}}); err != nil {
		c.log.Debug("commit offset for lag reporting", "err", err)
	}
	s.stats.Sealed.Add(int64(len(c.events)))
	s.stats.DeadLetters.Add(int64(len(c.dead)))
	if m := s.Metrics; m != nil {
		label := chainLabel(c.chain)
		m.sealed.WithLabelValues(label).Add(float64(len(c.events)))
		m.deadLetters.WithLabelValues(label).Add(float64(len(c.dead)))
		m.lastSeq.WithLabelValues(label).Set(float64(c.stored.LastSeq))
	}
	c.log.Debug("sealed", "events", len(c.events), "dead_letters", len(c.dead), "seq", c.stored.LastSeq, "took", time.Since(start))
	c.msgs, c.events, c.dead = 0, nil, nil
	return nil
}

// lagRecheck is the least time between two asks for a partition's end
// while a digest is withheld.
const lagRecheck = time.Second

// keepingUp says whether the chain may be vouched for by a new digest: it
// read records since the last one, or it has read everything the partition
// holds. A reader that cannot reach the partition's leader (a broker died)
// read nothing and cannot tell the partition's end, so the digest is
// withheld: the API's audit guard then sees the newest digest age and stops
// serving firm data, rather than trust a digest that says nothing new was
// sealed while access events wait unread.
func (c *chainSealer) keepingUp(ctx context.Context, reader *kafkago.Reader) bool {
	if c.fetched {
		return true
	}
	// While withholding, the loop comes here every turn; the partition's
	// end (up to 2 s to learn from a dying broker) is asked for at most
	// once per lagRecheck.
	if c.s.Now().Before(c.nextLagCheck) {
		return false
	}
	lagCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c.lagChecks++
	lag, err := reader.ReadLag(lagCtx)
	if err == nil && lag == 0 {
		return true
	}
	c.nextLagCheck = c.s.Now().Add(max(c.s.BatchWait, lagRecheck))
	if ctx.Err() == nil && c.s.Now().Sub(c.withheldAt) >= c.s.DigestInterval {
		c.withheldAt = c.s.Now()
		c.log.Warn("digest withheld: the chain read nothing and is not at the partition's end", "lag", lag, "err", err)
	}
	return false
}

// sign writes the next digest, covering the chain up to the checkpoint. A
// retry writes the very same digest: it is built and signed once.
func (c *chainSealer) sign(ctx context.Context) error {
	s := c.s
	d := firmbridge.NextAuditDigest(c.digest, c.stored, s.Now())
	d.Sign(s.SigningKey, s.KeyID)
	if err := s.retry(ctx, c.log, "write digest", func() error { return s.Store.WriteDigest(ctx, &d) }); err != nil {
		return err
	}
	c.digest, c.digestAt, c.fetched = &d, s.Now(), false
	s.stats.Digests.Add(1)
	if s.Metrics != nil {
		s.Metrics.digested(c.chain, d.SignedAt)
	}
	c.log.Debug("digest signed", "number", d.Number, "first_seq", d.FirstSeq, "last_seq", d.LastSeq)
	return nil
}

func (s *Sealer) retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		var inc *inconsistentError
		if ctx.Err() != nil || errors.As(err, &inc) {
			return fmt.Errorf("sealer: %s: %w", what, err)
		}
		s.stats.Retries.Add(1)
		log.Warn("retrying", "what", what, "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("sealer: %s: %w", what, err)
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func chainLabel(chain uint32) string { return strconv.FormatUint(uint64(chain), 10) }

// SealerMetrics are the audit sealer's Prometheus metrics, by chain.
type SealerMetrics struct {
	sealed      *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	lastSeq     *prometheus.GaugeVec
	now         func() time.Time

	mu         sync.Mutex
	lastDigest map[uint32]time.Time
	sinceDesc  *prometheus.Desc
}

// NewSealerMetrics creates the metrics and registers them with reg.
func NewSealerMetrics(reg prometheus.Registerer) *SealerMetrics {
	m := &SealerMetrics{
		sealed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "audit", Name: "events_sealed_total",
			Help: "Access events sealed into their chain and stored."}, []string{"chain"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "audit", Name: "dead_letters_total",
			Help: "Malformed audit records sent to the dead-letter topic."}, []string{"chain"}),
		lastSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "firmbridge", Subsystem: "audit", Name: "last_sequence",
			Help: "The sequence number of the newest stored event of each chain."}, []string{"chain"}),
		now:        time.Now,
		lastDigest: map[uint32]time.Time{},
		sinceDesc: prometheus.NewDesc("firmbridge_audit_seconds_since_last_digest",
			"Seconds since the newest signed digest of each chain; the API stops serving firm data past its limit.", []string{"chain"}, nil),
	}
	reg.MustRegister(m.sealed, m.deadLetters, m.lastSeq, m)
	return m
}

func (m *SealerMetrics) digested(chain uint32, at time.Time) {
	m.mu.Lock()
	m.lastDigest[chain] = at
	m.mu.Unlock()
}

// Describe implements prometheus.Collector for the time since the last digest,
// which is computed when scraped so that a stalled sealer shows it.
func (m *SealerMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.sinceDesc }

// Collect implements prometheus.Collector.
func (m *SealerMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for chain, at := range m.lastDigest {
		if g, err := prometheus.NewConstMetric(m.sinceDesc, prometheus.GaugeValue, now.Sub(at).Seconds(), chainLabel(chain)); err == nil {
			ch <- g
		}
	}
}
