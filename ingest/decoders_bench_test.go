package ingest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/ingest"
)

// BenchmarkEnvelopeDecoder measures what a pipeline worker does per Kafka
// message: decode the envelope bytes and normalize them into rows, over the
// realistic source mix that synth generates.
func BenchmarkEnvelopeDecoder(b *testing.B) {
	reg, err := all.Registry()
	if err != nil {
		b.Fatal(err)
	}
	end := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var msgs []kafkago.Message
	for _, env := range synth.Envelopes(1, synth.Firms(1, 40), 24, end, synth.Options{}) {
		v, err := json.Marshal(env)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, kafkago.Message{Value: v})
	}
	decode := ingest.EnvelopeDecoder(reg)
	run := func(b *testing.B, msgs []kafkago.Message) {
		ctx := context.Background()
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decode(ctx, msgs[n%len(msgs)], end); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("mix", func(b *testing.B) { run(b, msgs) })
	// Per source, to see where the mix's time goes.
	bySource := map[string][]kafkago.Message{}
	var sources []string
	for _, m := range msgs {
		var env struct{ Source string }
		if err := json.Unmarshal(m.Value, &env); err != nil {
			b.Fatal(err)
		}
		if bySource[env.Source] == nil {
			sources = append(sources, env.Source)
		}
		bySource[env.Source] = append(bySource[env.Source], m)
	}
	for _, src := range sources {
		b.Run(src, func(b *testing.B) { run(b, bySource[src]) })
	}
}
