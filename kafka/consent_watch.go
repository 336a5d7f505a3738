package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ConsentWatch follows consent.events.v1 from the moment it starts, on
// every partition, without a consumer group: each API instance must see
// every event. It tells OnEvent the firm of each event, and OnCaughtUp a
// time t such that every event acknowledged before t has been passed to
// OnEvent; a consent cache is fresh as of that time.
type ConsentWatch struct {
	Config     Config
	Topic      string
	OnEvent    func(uscc string)
	OnCaughtUp func(asOf time.Time)
	// CheckEvery is how often the partitions' ends are compared with what
	// was read; default 200 ms.
	CheckEvery time.Duration
	Logger     *slog.Logger
}

// Run follows the topic until ctx ends. It returns an error only when the
// topic cannot be described at start; later failures are retried, and
// OnCaughtUp simply stops being called while they last.
func (w *ConsentWatch) Run(ctx context.Context) error {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	every := w.CheckEvery
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	client := &kafkago.Client{Addr: kafkago.TCP(w.Config.Brokers...), Timeout: 5 * time.Second}
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{w.Topic}})
	if err != nil {
		return fmt.Errorf("consent watch: describe %s: %w", w.Topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		return fmt.Errorf("consent watch: topic %s not found", w.Topic)
	}
	var partitions []int
	for _, p := range meta.Topics[0].Partitions {
		partitions = append(partitions, p.ID)
	}
	// Start at the current ends: the cache loads consents from ClickHouse
	// after this, and every change is stored before its event is published.
	ends, err := partitionEnds(ctx, client, w.Topic, partitions)
	if err != nil {
		return fmt.Errorf("consent watch: %w", err)
	}
	read := make(map[int]*atomic.Int64, len(partitions))
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, p := range partitions {
		read[p] = new(atomic.Int64)
		read[p].Store(ends[p])
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: w.Config.Brokers, Topic: w.Topic, Partition: p,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(ends[p]); err != nil {
			r.Close()
			return fmt.Errorf("consent watch: partition %d: %w", p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					log.Warn("consent watch: read failed; retrying", "partition", p, "err", err)
					time.Sleep(time.Second)
					continue
				}
				w.OnEvent(eventUSCC(m))
				read[p].Store(m.Offset + 1)
			}
		}()
	}

	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		// Taken before asking: an event acknowledged before asOf is below
		// the end the broker reports after it.
		asOf := time.Now()
		ends, err := partitionEnds(ctx, client, w.Topic, partitions)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("consent watch: cannot read partition ends", "err", err)
			}
			continue
		}
		caughtUp := true
		for _, p := range partitions {
			caughtUp = caughtUp && read[p].Load() >= ends[p]
		}
		if caughtUp {
			w.OnCaughtUp(asOf)
		}
	}
}

// eventUSCC is the firm of a consent event: the message key, or the
// event's uscc field for a producer that did not key it.
func eventUSCC(m kafkago.Message) string {
	if len(m.Key) > 0 {
		return string(m.Key)
	}
	var e struct {
		USCC string `json:"uscc"`
	}
	_ = json.Unmarshal(m.Value, &e)
	return e.USCC
}

// partitionEnds returns the high watermark of each partition: the offset
// the next acknowledged message will get.
func partitionEnds(ctx context.Context, client *kafkago.Client, topic string, partitions []int) (map[int]int64, error) {
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafkago.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends := make(map[int]int64, len(partitions))
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s partition %d: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
	}
	for _, p := range partitions {
		if _, ok := ends[p]; !ok {
			return nil, errors.New("list offsets of " + topic + ": a partition is missing from the answer")
		}
	}
	return ends, nil
}
