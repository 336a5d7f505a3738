package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
)

// Lineage headers on every message PublishRaw writes. Ingest copies a
// message's headers onto its dead letter, so they follow a rejected record
// too.
const (
	HeaderProvider  = "firmbridge-provider"   // the provider org that pushed the record
	HeaderRequestID = "firmbridge-request-id" // the API request that delivered it
)

// RawPublisher writes envelopes pushed through the API to the raw topics
// (raw.<domain>.v1, with the config's prefix) and returns only after every
// in-sync replica has them.
type RawPublisher struct {
	cfg    Config
	writer *Writer
	// Timeout bounds one batch write. The write is not cut short when the
	// client hangs up, so that its outcome does not depend on the client.
	Timeout time.Duration
}

var _ firmbridge.RawPublisher = (*RawPublisher)(nil)

// NewRawPublisher returns a publisher for the raw topics of cfg. One
// writer serves every domain: each message names its topic.
func NewRawPublisher(cfg Config) *RawPublisher {
	w := NewWriter(cfg, "")
	return &RawPublisher{cfg: cfg, writer: w, Timeout: 30 * time.Second}
}

// PublishRaw implements firmbridge.RawPublisher: one WriteMessages call for
// the whole batch, keyed by the envelope's USCC (the record id when the
// envelope carries none, as provider-file records do: their connector reads
// the firm from the payload), with the origin in HeaderProvider and
// HeaderRequestID.
//
// kafka-go writes the batch partition by partition, so on an error some
// partitions may hold their messages and others not. The error then says how
// many were not acknowledged; the caller treats the batch as not accepted
// and the sender re-sends all of it, which is safe because a record
// re-delivered with the same record id replaces itself downstream.
func (p *RawPublisher) PublishRaw(ctx context.Context, domain string, envs []firmbridge.Envelope, origin firmbridge.RawOrigin) error {
	if !slices.Contains(firmbridge.Domains, domain) {
		return fmt.Errorf("publish raw: unknown domain %q", domain)
	}
	if len(envs) == 0 {
		return nil
	}
	topic := p.cfg.Topic(firmbridge.RawTopic(domain))
	headers := []kafkago.Header{
		{Key: HeaderProvider, Value: []byte(origin.Org)},
		{Key: HeaderRequestID, Value: []byte(origin.RequestID)},
	}
	msgs := make([]kafkago.Message, len(envs))
	for i := range envs {
		body, err := json.Marshal(&envs[i])
		if err != nil {
			return fmt.Errorf("publish raw: encode envelope %s: %w", envs[i].RecordID, err)
		}
		key := strings.TrimSpace(envs[i].USCC)
		if key == "" {
			key = envs[i].RecordID
		}
		msgs[i] = kafkago.Message{Topic: topic, Key: []byte(key), Value: body, Headers: headers}
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		var we kafkago.WriteErrors
		if errors.As(err, &we) {
			return fmt.Errorf("publish raw: %d of %d messages to %s not acknowledged: %w", we.Count(), len(msgs), topic, err)
		}
		return fmt.Errorf("publish raw: write %d messages to %s: %w", len(msgs), topic, err)
	}
	return nil
}

// Close flushes and closes the writer and its connections.
func (p *RawPublisher) Close() error {
	err := p.writer.Close()
	if t, ok := p.writer.Transport.(*kafkago.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}
