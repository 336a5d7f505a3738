package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/schollz/progressbar/v3"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// benchResult is one line of the table.
type benchResult struct {
	measure  string
	records  int64
	rows     int64 // 0: not counted
	duration time.Duration
	baseline bool      // a baseline the ratios are taken against
	info     bool      // shown for context, without a ratio
	cpu      cpuSample // CPU used during the measure, where it was measured
}

func (r benchResult) perSecond(n int64) float64 {
	if r.duration <= 0 {
		return 0
	}
	return float64(n) / r.duration.Seconds()
}

// benchTopics are the scratch raw topics, one per domain with records.
type benchTopics struct {
	domains []string          // in firmbridge.Domains order
	raw     map[string]string // domain → raw topic
	dlq     map[string]string // domain → dead-letter topic
	end     map[string][]int64
}

// produceCorpus publishes the corpus to the raw topics, one writer per
// topic, with a progress bar, and returns how long it took.
func produceCorpus(ctx context.Context, kcfg kafka.Config, topics *benchTopics, c *benchCorpus, bar *progressbar.ProgressBar) (time.Duration, error) {
	const chunk = 10000
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(topics.domains))
	for i, d := range topics.domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := kafka.NewWriter(kcfg, topics.raw[d])
			w.BatchSize = 2000
			w.BatchTimeout = 20 * time.Millisecond
			defer w.Close()
			msgs := make([]kafkago.Message, 0, chunk)
			flush := func() error {
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					return fmt.Errorf("bench: produce to %s: %w", topics.raw[d], err)
				}
				_ = bar.Add(len(msgs))
				msgs = msgs[:0]
				return nil
			}
			for _, m := range c.msgs {
				if m.domain != d {
					continue
				}
				msgs = append(msgs, kafkago.Message{Key: m.key, Value: m.value})
				if len(msgs) == chunk {
					if errs[i] = flush(); errs[i] != nil {
						return
					}
				}
			}
			if len(msgs) > 0 {
				errs[i] = flush()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	_ = bar.Finish()
	return took, errors.Join(errs...)
}

// endOffsets reads the end offset of every partition of the raw topics and
// checks that they hold exactly the records produced.
func endOffsets(ctx context.Context, client *kafkago.Client, partitions int, topics *benchTopics, c *benchCorpus) error {
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, d := range topics.domains {
		for p := range partitions {
			req.Topics[topics.raw[d]] = append(req.Topics[topics.raw[d]], kafkago.LastOffsetOf(p))
		}
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("bench: list offsets: %w", err)
	}
	topics.end = map[string][]int64{}
	for _, d := range topics.domains {
		t := topics.raw[d]
		ends := make([]int64, partitions)
		var sum int64
		for _, po := range resp.Topics[t] {
			if po.Error != nil {
				return fmt.Errorf("bench: list offsets of %s/%d: %w", t, po.Partition, po.Error)
			}
			ends[po.Partition] = po.LastOffset
			sum += po.LastOffset
		}
		if sum != int64(c.byDomain[d]) {
			return fmt.Errorf("bench: %s holds %d records, %d were produced", t, sum, c.byDomain[d])
		}
		topics.end[d] = ends
	}
	return nil
}

// benchExpect is what normalizing the corpus yields, per domain.
type benchExpect struct {
	rows, rejects map[string]int64
}

// normalizeCorpus decodes and normalizes every record as the pipeline does
// (ingest.EnvelopeDecoder), in one goroutine, and counts the outcome.
func normalizeCorpus(ctx context.Context, decode ingest.Decoder, c *benchCorpus) (benchResult, benchExpect, error) {
	exp := benchExpect{rows: map[string]int64{}, rejects: map[string]int64{}}
	now := time.Now()
	var rows int64
	start := time.Now()
	for _, m := range c.msgs {
		out, err := decode(ctx, kafkago.Message{Key: m.key, Value: m.value}, now)
		if err != nil {
			var rej *firmbridge.Reject
			if !errors.As(err, &rej) {
				return benchResult{}, exp, fmt.Errorf("bench: normalize: %w", err)
			}
			exp.rejects[m.domain]++
			continue
		}
		exp.rows[m.domain] += int64(len(out))
		rows += int64(len(out))
	}
	took := time.Since(start)
	return benchResult{measure: "normalize only (decode + connectors, 1 goroutine)", records: int64(len(c.msgs)), rows: rows, duration: took, info: true}, exp, nil
}

// firstAndLast times a run from its first record to its last: the time
// consumer groups take to join is reported apart, not counted.
type firstAndLast struct {
	begin time.Time
	first atomic.Int64 // unix nanoseconds of the first record
}

func (f *firstAndLast) mark() {
	if f.first.Load() == 0 {
		f.first.CompareAndSwap(0, time.Now().UnixNano())
	}
}

func (f *firstAndLast) times(end time.Time) (join, run time.Duration) {
	first := time.Unix(0, f.first.Load())
	return first.Sub(f.begin), end.Sub(first)
}

// benchReaderConfig is the reader configuration of ingest.Pipeline, so that
// the bare consumer reads the way the pipeline does.
func benchReaderConfig(brokers []string, group, topic string) kafkago.ReaderConfig {
	return kafkago.ReaderConfig{
		Brokers: brokers, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond,
		StartOffset: kafkago.FirstOffset, CommitInterval: 0, QueueCapacity: 1000,
	}
}

// consumeBare reads every raw topic to its end with consumer-group readers
// configured like the pipeline's (workers per topic), doing nothing with the
// records and committing nothing. A record read twice after a rebalance
// counts once: progress is each partition's highest offset.
func consumeBare(ctx context.Context, brokers []string, groupPrefix string, workers int, topics *benchTopics, total int64, timeout time.Duration) (benchResult, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var progress atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	clock := &firstAndLast{begin: time.Now()}
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for _, d := range topics.domains {
		high := make([]atomic.Int64, len(topics.end[d])) // next offset per partition
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := kafkago.NewReader(benchReaderConfig(brokers, groupPrefix+d, topics.raw[d]))
				defer r.Close()
				for {
					msg, err := r.FetchMessage(ctx)
					if err != nil {
						if ctx.Err() == nil {
							errMu.Lock()
							firstErr = errors.Join(firstErr, err)
							errMu.Unlock()
							cancel()
						}
						return
					}
					clock.mark()
					h := &high[msg.Partition]
					for {
						cur := h.Load()
						if msg.Offset < cur {
							break
						}
						if h.CompareAndSwap(cur, msg.Offset+1) {
							if progress.Add(msg.Offset+1-cur) == total {
								once.Do(func() { close(done) })
							}
							break
						}
					}
				}
			}()
		}
	}
	var end time.Time
	select {
	case <-done:
		end = time.Now()
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if end.IsZero() {
		if firstErr != nil {
			return benchResult{}, 0, fmt.Errorf("bench: bare consume: %w", firstErr)
		}
		return benchResult{}, 0, fmt.Errorf("bench: bare consume read %d of %d records in %s", progress.Load(), total, timeout)
	}
	join, run := clock.times(end)
	return benchResult{measure: "baseline A: bare kafka-go consume", records: total, duration: run, baseline: true}, join, nil
}

// benchE2E is what the end-to-end run saw.
type benchE2E struct {
	result               benchResult
	join                 time.Duration
	messages, rows, dead int64
	batches, retries     int64
}

// runPipelines runs one ingest.Pipeline per raw topic into the store until
// the pipelines' counters say every record is stored or dead-lettered and
// the consumer groups' committed offsets reach the end of every partition.
func runPipelines(ctx context.Context, brokers []string, groupPrefix string, topics *benchTopics, exp benchExpect, decode ingest.Decoder,
	sink ingest.Sink, workers, batchRows int, batchWait, batchIdle, timeout time.Duration, logger *slog.Logger, client *kafkago.Client, total int64) (benchE2E, error) {
	var out benchE2E
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var pipes []*ingest.Pipeline
	for _, d := range topics.domains {
		pipes = append(pipes, &ingest.Pipeline{
			Brokers: brokers, Topic: topics.raw[d], GroupID: groupPrefix + d, DeadLetterTopic: topics.dlq[d],
			Decode: decode, Sink: sink, Workers: workers, BatchRows: batchRows, BatchWait: batchWait, IdleWait: batchIdle, Logger: logger,
		})
	}
	clock := &firstAndLast{begin: time.Now()}
	var wg sync.WaitGroup
	errs := make([]error, len(pipes))
	for i, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(runCtx)
			if errs[i] != nil {
				stop()
			}
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	counted := func() bool {
		complete := true
		var messages int64
		for i, d := range topics.domains {
			s := pipes[i].Stats()
			messages += s.Messages.Load()
			if s.Rows.Load() < exp.rows[d] || s.DeadLetters.Load() < exp.rejects[d] {
				complete = false
			}
		}
		if messages > 0 {
			clock.mark()
		}
		return complete
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var end time.Time
	for end.IsZero() {
		select {
		case <-runCtx.Done():
			stop()
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return out, fmt.Errorf("bench: pipeline: %w", err)
			}
			return out, ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("bench: the pipelines did not store every record within %s", timeout)
		}
		if !counted() {
			continue
		}
		at := time.Now()
		ok, err := committedToEnd(runCtx, client, groupPrefix, topics)
		if err != nil {
			return out, err
		}
		if ok {
			end = at
		}
	}
	stop()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("bench: pipeline: %w", err)
	}
	out.join, out.result.duration = clock.times(end)
	for _, p := range pipes {
		s := p.Stats()
		out.messages += s.Messages.Load()
		out.rows += s.Rows.Load()
		out.dead += s.DeadLetters.Load()
		out.batches += s.Batches.Load()
		out.retries += s.Retries.Load()
	}
	out.result.measure = "end-to-end: ingest.Pipeline (Kafka → normalize → ClickHouse)"
	out.result.records = total
	out.result.rows = out.rows
	return out, nil
}

// committedToEnd says whether every consumer group committed every
// partition of its topic up to the partition's end: offsets move only
// after ClickHouse and the dead-letter topic hold the records before them.
func committedToEnd(ctx context.Context, client *kafkago.Client, groupPrefix string, topics *benchTopics) (bool, error) {
	for _, d := range topics.domains {
		parts := make([]int, len(topics.end[d]))
		for i := range parts {
			parts[i] = i
		}
		resp, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: groupPrefix + d, Topics: map[string][]int{topics.raw[d]: parts}})
		if err != nil {
			return false, fmt.Errorf("bench: fetch committed offsets: %w", err)
		}
		if resp.Error != nil {
			return false, fmt.Errorf("bench: fetch committed offsets: %w", resp.Error)
		}
		for _, p := range resp.Topics[topics.raw[d]] {
			if p.CommittedOffset < topics.end[d][p.Partition] {
				return false, nil
			}
		}
	}
	return true, nil
}

// insertBare is baseline B: the rows the pipelines store, written with
// clickhouse-go alone: per batch, one PrepareBatch (explicit columns) per
// table, Append, Send, as schema.Store.InsertRows does, without the
// pipeline around it. Batches are cut as the pipeline cuts them (a
// record's rows never split; a batch closes at batchRows rows or more),
// one stream of batches per domain and worker, as the pipelines run.
//
// The batches are normalized before the clock starts; then the streams
// insert theirs one after another, concurrently, with the clock running,
// as the pipelines do. (Normalizing in rounds of one batch per stream
// between timed inserts, as this did before, let the server merge parts
// in the untimed gaps, which the pipelines never get.) To bound memory,
// a corpus larger than bareRoundRecords goes in that many records at a
// time.
func insertBare(ctx context.Context, conn driver.Conn, decode ingest.Decoder, c *benchCorpus, batchRows, workers int, meter cpuMeter) (benchResult, error) {
	now := time.Now()
	var took time.Duration
	var cpu cpuSample
	var records, rows int64
	for from := 0; from < len(c.msgs); from += bareRoundRecords {
		msgs := c.msgs[from:min(from+bareRoundRecords, len(c.msgs))]
		streams, n, r := bareStreams(ctx, decode, msgs, batchRows, workers, now)
		records, rows = records+n, rows+r
		runtime.GC()
		start, startCPU := time.Now(), meter.sample()
		err := insertStreams(ctx, conn, streams)
		took, cpu = took+time.Since(start), cpu.add(meter.sample().sub(startCPU))
		if err != nil {
			return benchResult{}, fmt.Errorf("bench: bare insert: %w", err)
		}
	}
	return benchResult{measure: "baseline B: bare clickhouse-go insert", records: records, rows: rows, duration: took, baseline: true, cpu: cpu}, nil
}

// bareRoundRecords bounds the records whose rows baseline B holds at once:
// about 3 GB of the process's memory per million.
var bareRoundRecords = 1_500_000

// bareStreams normalizes msgs and cuts their rows into batches, one stream
// of batches per domain and worker; it returns the streams and how many
// records and rows they hold.
func bareStreams(ctx context.Context, decode ingest.Decoder, msgs []benchMsg, batchRows, workers int, now time.Time) (streams [][][]firmbridge.Row, records, rows int64) {
	for _, d := range firmbridge.Domains {
		var batches [][]firmbridge.Row
		var batch []firmbridge.Row
		for _, m := range msgs {
			if m.domain != d {
				continue
			}
			out, err := decode(ctx, kafkago.Message{Key: m.key, Value: m.value}, now)
			if err != nil {
				continue // a reject has no rows
			}
			batch = append(batch, out...)
			records++
			if len(batch) >= batchRows {
				batches, batch = append(batches, batch), nil
			}
		}
		if len(batch) > 0 {
			batches = append(batches, batch)
		}
		for _, b := range batches {
			rows += int64(len(b))
		}
		// A domain's workers share its batches in turn, as partitions
		// share a topic's records.
		for w := range workers {
			var mine [][]firmbridge.Row
			for i := w; i < len(batches); i += workers {
				mine = append(mine, batches[i])
			}
			if len(mine) > 0 {
				streams = append(streams, mine)
			}
		}
	}
	return streams, records, rows
}

// insertStreams inserts every stream's batches in order, the streams
// concurrently.
func insertStreams(ctx context.Context, conn driver.Conn, streams [][][]firmbridge.Row) error {
	var wg sync.WaitGroup
	errs := make([]error, len(streams))
	for i, batches := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range batches {
				if err := insertRowsBare(ctx, conn, b); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func insertRowsBare(ctx context.Context, conn driver.Conn, rows []firmbridge.Row) error {
	for _, g := range schema.GroupRows(rows) {
		into := g.Table + " (" + strings.Join(g.Columns, ", ") + ")"
		b, err := conn.PrepareBatch(ctx, "INSERT INTO "+into)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", into, err)
		}
		if err := schema.AppendRows(b, g.Rows); err != nil {
			_ = b.Abort()
			return fmt.Errorf("append to %s: %w", into, err)
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("send %d rows to %s: %w", len(g.Rows), into, err)
		}
	}
	return nil
}

// mergeAll merges every MergeTree table of the store's database to one
// part (OPTIMIZE … FINAL), so that the merges a measure's inserts left
// behind do not run, and cost CPU, during the next measure. It returns
// how long that took.
func mergeAll(ctx context.Context, store *schema.Store) (time.Duration, error) {
	start := time.Now()
	rows, err := store.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree'", store.Database())
	if err != nil {
		return 0, fmt.Errorf("bench: list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return 0, fmt.Errorf("bench: list tables: %w", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("bench: list tables: %w", err)
	}
	for _, t := range tables {
		if err := store.Conn().Exec(ctx, "OPTIMIZE TABLE `"+store.Database()+"`.`"+t+"` FINAL"); err != nil {
			return 0, fmt.Errorf("bench: merge %s: %w", t, err)
		}
	}
	waitForMerges(ctx, store, 30*time.Second)
	return time.Since(start), nil
}

// waitForMerges waits, up to limit, until ClickHouse runs no merges, so
// that one measure does not pay for the previous one's background work.
func waitForMerges(ctx context.Context, store *schema.Store, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		var n uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil || n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
