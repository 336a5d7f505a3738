package ingest

import (
	"context"
	"encoding/json"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
)

// Normalizer turns raw envelopes (JSON, as on raw.<domain>.v1) into
// canonical rows; connectors.Registry satisfies it.
type Normalizer interface {
	NormalizeJSON(ctx context.Context, envelope []byte, ingestedAt time.Time) ([]firmbridge.Row, error)
}

// EnvelopeDecoder decodes raw envelopes and normalizes them.
func EnvelopeDecoder(n Normalizer) Decoder {
	return func(ctx context.Context, msg kafkago.Message, ingestedAt time.Time) ([]firmbridge.Row, error) {
		return n.NormalizeJSON(ctx, msg.Value, ingestedAt)
	}
}

// AccessEventDecoder decodes access events from audit.access.v1.
func AccessEventDecoder() Decoder {
	return func(_ context.Context, msg kafkago.Message, _ time.Time) ([]firmbridge.Row, error) {
		var e firmbridge.AccessEvent
		if err := json.Unmarshal(msg.Value, &e); err != nil {
			return nil, &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Message: "not a JSON access event: " + err.Error()}
		}
		if e.EventID == "" || e.OccurredAt.IsZero() {
			return nil, &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: "event_id", Message: "an access event needs event_id and occurred_at"}
		}
		return []firmbridge.Row{&e}, nil
	}
}
