package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/kafka"
)

// Replay re-feeds dead letters of one source to its raw topic, typically
// after a connector was fixed. Progress is kept as committed offsets of a
// consumer group per source, so a second replay sends only dead letters
// that arrived since; records that fail again are dead-lettered again by
// ingest, with their new reason.
type Replay struct {
	Brokers         []string
	DeadLetterTopic string
	RawTopic        string
	Source          string // only dead letters whose envelope has this source
	GroupID         string // progress; default "firmbridge-replay-dlq." + Source
	DryRun          bool   // count what would be replayed; send and commit nothing
	Logger          *slog.Logger
}

// ReplayStats says what a replay did.
type ReplayStats struct {
	Read       int // dead letters read
	Replayed   int // sent back to the raw topic
	OtherSrc   int // of another source, left alone
	Unreadable int // not an envelope (e.g. invalid JSON): they cannot be attributed to a source
}

// HeaderReplayedFrom marks a replayed record with the dead letter it came from.
const HeaderReplayedFrom = "firmbridge-replayed-from"

// Run replays every dead letter between the group's committed offsets and
// the end of each partition as it was when Run started.
func (r *Replay) Run(ctx context.Context) (ReplayStats, error) {
	var st ReplayStats
	if r.Source == "" || r.DeadLetterTopic == "" || r.RawTopic == "" || len(r.Brokers) == 0 {
		return st, errors.New("replay: brokers, source, dead-letter and raw topics are required")
	}
	if r.GroupID == "" {
		r.GroupID = "firmbridge-replay-dlq." + r.Source
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	client := &kafkago.Client{Addr: kafkago.TCP(r.Brokers...), Timeout: 10 * time.Second}
	parts, err := kafka.Partitions(ctx, kafka.Config{Brokers: r.Brokers}, r.DeadLetterTopic)
	if err != nil {
		return st, fmt.Errorf("replay: %w", err)
	}
	var ids []int
	var reqs []kafkago.OffsetRequest
	for _, p := range parts {
		ids = append(ids, p.ID)
		reqs = append(reqs, kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
	}
	ends, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{r.DeadLetterTopic: reqs}})
	if err != nil {
		return st, fmt.Errorf("replay: offsets of %s: %w", r.DeadLetterTopic, err)
	}
	committed, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: r.GroupID, Topics: map[string][]int{r.DeadLetterTopic: ids}})
	if err != nil {
		return st, fmt.Errorf("replay: committed offsets of %s: %w", r.GroupID, err)
	}
	start := map[int]int64{}
	for _, p := range committed.Topics[r.DeadLetterTopic] {
		start[p.Partition] = p.CommittedOffset
	}
	writer := kafka.NewWriter(kafka.Config{Brokers: r.Brokers}, r.RawTopic)
	defer writer.Close()

	for _, po := range ends.Topics[r.DeadLetterTopic] {
		if po.Error != nil {
			return st, fmt.Errorf("replay: offsets of %s/%d: %w", r.DeadLetterTopic, po.Partition, po.Error)
		}
		from := start[po.Partition]
		if from < po.FirstOffset { // nothing committed yet (-1), or retention removed it
			from = po.FirstOffset
		}
		if from >= po.LastOffset {
			continue
		}
		if err := r.replayPartition(ctx, writer, po.Partition, from, po.LastOffset, &st); err != nil {
			return st, err
		}
		if r.DryRun {
			continue
		}
		// Committed only after the writer's acks: a crash before this
		// replays the partition again, which is safe (records replace
		// themselves by record id and version).
		resp, err := client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: r.GroupID, GenerationID: -1,
			Topics: map[string][]kafkago.OffsetCommit{r.DeadLetterTopic: {{Partition: po.Partition, Offset: po.LastOffset}}}})
		if err != nil {
			return st, fmt.Errorf("replay: commit progress: %w", err)
		}
		for _, p := range resp.Topics[r.DeadLetterTopic] {
			if p.Error != nil {
				return st, fmt.Errorf("replay: commit progress of partition %d: %w", p.Partition, p.Error)
			}
		}
		log.Info("replayed partition", "topic", r.DeadLetterTopic, "partition", po.Partition, "from", from, "to", po.LastOffset)
	}
	return st, nil
}

func (r *Replay) replayPartition(ctx context.Context, w *kafka.Writer, partition int, from, to int64, st *ReplayStats) error {
	reader := kafkago.NewReader(kafkago.ReaderConfig{Brokers: r.Brokers, Topic: r.DeadLetterTopic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond})
	defer reader.Close()
	if err := reader.SetOffset(from); err != nil {
		return fmt.Errorf("replay: seek %s/%d to %d: %w", r.DeadLetterTopic, partition, from, err)
	}
	var out []kafkago.Message
	flush := func() error {
		if len(out) == 0 || r.DryRun {
			out = out[:0]
			return nil
		}
		if err := w.WriteMessages(ctx, out...); err != nil {
			return fmt.Errorf("replay: write to %s: %w", r.RawTopic, err)
		}
		out = out[:0]
		return nil
	}
	for {
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("replay: read %s/%d: %w", r.DeadLetterTopic, partition, err)
		}
		st.Read++
		var env struct {
			Source string `json:"source"`
		}
		switch {
		case json.Unmarshal(msg.Value, &env) != nil:
			st.Unreadable++
		case env.Source != r.Source:
			st.OtherSrc++
		default:
			st.Replayed++
			headers := []kafkago.Header{{Key: HeaderReplayedFrom, Value: []byte(msg.Topic + "/" + strconv.Itoa(msg.Partition) + "/" + strconv.FormatInt(msg.Offset, 10))}}
			// The old reject reason stays in the dead-letter topic; a record
			// that fails again gets a fresh one.
			for _, h := range msg.Headers {
				if !strings.HasPrefix(h.Key, "firmbridge-reject-") && h.Key != HeaderReplayedFrom &&
					h.Key != HeaderSourceTopic && h.Key != HeaderSourceOffset && h.Key != HeaderRejectedAt {
					headers = append(headers, h)
				}
			}
			out = append(out, kafkago.Message{Key: msg.Key, Value: msg.Value, Headers: headers})
			if len(out) >= 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if msg.Offset+1 >= to {
			return flush()
		}
	}
}
