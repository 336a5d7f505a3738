package schema_test

import (
	"context"
	"testing"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// benchReader stores 24 months of generated provider data for 500 firms.
func benchReader(b *testing.B) (schema.ProfileReader, []synth.Firm) {
	store := testenv.Store(b)
	firms := synth.Firms(3, 500)
	e := newEnvelopes(b)
	for _, rec := range synth.Generate(3, firms, 24, date(2024, 7, 1), synth.Options{}) {
		e.add(rec.Envelope)
	}
	if err := store.InsertRows(context.Background(), e.rows); err != nil {
		b.Fatal(err)
	}
	return schema.ProfileReader{Store: store}, firms
}

// BenchmarkReadProfile reads one firm's full profile (four concurrent
// queries) per operation.
func BenchmarkReadProfile(b *testing.B) {
	r, firms := benchReader(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f := firms[i%len(firms)]
		if _, err := r.ReadProfiles(ctx, []firmbridge.ProfileRequest{{USCC: f.USCC, Scopes: allScopes}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadProfiles500 reads a batch of 500 firms per operation.
func BenchmarkReadProfiles500(b *testing.B) {
	r, firms := benchReader(b)
	reqs := make([]firmbridge.ProfileRequest, len(firms))
	for i, f := range firms {
		reqs[i] = firmbridge.ProfileRequest{USCC: f.USCC, Scopes: allScopes}
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.ReadProfiles(ctx, reqs); err != nil {
			b.Fatal(err)
		}
	}
}
