package firmbridge

import "context"

// RawOrigin says who pushed a batch of raw records through the API, so that
// every record on a raw topic can be traced to the provider and the request
// that delivered it.
type RawOrigin struct {
	Org       string // the provider institution: the token's org
	RequestID string // the API request id (X-Request-ID)
}

// RawPublisher writes envelopes to the raw topic of a data domain, keyed by
// the envelope's USCC (its record id when it has none).
//
// PublishRaw returns nil only after every in-sync replica holds every
// envelope of the batch. An error means the batch was not accepted as a
// whole, although some of its envelopes may already be on the topic (the
// writes go partition by partition): the sender re-sends the whole batch,
// which is safe because record ids are stable and a re-delivered record
// replaces itself downstream.
type RawPublisher interface {
	PublishRaw(ctx context.Context, domain string, envs []Envelope, origin RawOrigin) error
}
