package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
)

// HeaderEventType carries a consent event's type, so a consumer can skip
// the events it does not care about without decoding them.
const HeaderEventType = "firmbridge-event-type"

// ConsentEvents writes consent changes to consent.events.v1, keyed by the
// firm's USCC so one firm's changes stay ordered, and returns only after
// every in-sync replica has them.
type ConsentEvents struct {
	writer *Writer
	// Timeout bounds one write. The write is not cut short when the client
	// hangs up: the change it announces is already stored.
	Timeout time.Duration
}

var _ firmbridge.ConsentEventPublisher = (*ConsentEvents)(nil)

// NewConsentEvents returns a publisher writing to topic (normally
// cfg.Topic(firmbridge.TopicConsentEvents)).
func NewConsentEvents(cfg Config, topic string) *ConsentEvents {
	return &ConsentEvents{writer: NewWriter(cfg, topic), Timeout: 10 * time.Second}
}

// PublishConsentEvent implements firmbridge.ConsentEventPublisher.
func (p *ConsentEvents) PublishConsentEvent(ctx context.Context, e *firmbridge.ConsentEvent) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("consent events: encode %s: %w", e.EventID, err)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	msg := kafkago.Message{Key: []byte(e.USCC), Value: body, Headers: []kafkago.Header{{Key: HeaderEventType, Value: []byte(e.Type)}}}
	if err := p.writer.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("consent events: write %s: %w", e.EventID, err)
	}
	return nil
}

// Close flushes and closes the writer and its connections.
func (p *ConsentEvents) Close() error {
	err := p.writer.Close()
	if t, ok := p.writer.Transport.(*kafkago.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}
