package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
)

// AuditLog writes access events to audit.access.v1 and returns only after
// every in-sync replica has them.
type AuditLog struct {
	writer  *Writer
	Timeout time.Duration // bound on one write; the request fails closed after it
}

var _ firmbridge.AuditLog = (*AuditLog)(nil)

// NewAuditLog returns an audit log writing to topic (normally
// firmbridge.TopicAuditAccess).
func NewAuditLog(cfg Config, topic string) *AuditLog {
	return &AuditLog{writer: NewWriter(cfg, topic), Timeout: 5 * time.Second}
}

// Record implements firmbridge.AuditLog.
func (a *AuditLog) Record(ctx context.Context, e *firmbridge.AccessEvent) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode event: %w", err)
	}
	// The write must not be cut short by a client that hangs up: the event
	// of a request that was served has to exist.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.Timeout)
	defer cancel()
	key := e.USCC
	if key == "" {
		key = e.Org
	}
	if err := a.writer.WriteMessages(ctx, kafkago.Message{Key: []byte(key), Value: body}); err != nil {
		return fmt.Errorf("audit: write event %s: %w", e.EventID, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (a *AuditLog) Close() error { return a.writer.Close() }
