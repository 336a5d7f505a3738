// Package connectors turns raw provider records into canonical rows.
//
// The domain packages (connectors/tax, connectors/patent,
// connectors/operations) each export Connectors(), one firmbridge.Connector
// per provider source; connectors/all builds the Registry of all of them,
// which is what ingest and the command line use. This package holds the
// Registry and the normalization every domain shares: USCCs, money, periods
// and dates, payload decoding (JSON, CSV lines, base64 GB18030), and
// enumerations. Everything here is pure: no I/O, no clock.
//
// A record that can never be accepted is a *firmbridge.Reject with one of
// the firmbridge.Reject* codes, the offending field as the provider named
// it, and a message in plain words.
package connectors

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/firmbridge/firmbridge"
)

// Registry finds the connector for an envelope's source. It is immutable
// after NewRegistry and safe for concurrent use.
type Registry struct {
	bySource map[string]firmbridge.Connector
	sources  []string
}

// NewRegistry builds a registry of the given connectors. Two connectors
// with the same source, a nil connector or an empty source are errors.
func NewRegistry(cs ...firmbridge.Connector) (*Registry, error) {
	r := &Registry{bySource: make(map[string]firmbridge.Connector, len(cs))}
	for i, c := range cs {
		if c == nil {
			return nil, fmt.Errorf("connector %d is nil", i)
		}
		src := c.Source()
		if strings.TrimSpace(src) == "" || src != strings.ToLower(strings.TrimSpace(src)) {
			return nil, fmt.Errorf("connector %d (%T) has source %q: want a lower-case name like tax.vat_return", i, c, src)
		}
		if len(c.SchemaVersions()) == 0 {
			return nil, fmt.Errorf("connector %s supports no schema version", src)
		}
		if _, dup := r.bySource[src]; dup {
			return nil, fmt.Errorf("two connectors for source %s", src)
		}
		r.bySource[src] = c
		r.sources = append(r.sources, src)
	}
	sort.Strings(r.sources)
	return r, nil
}

// Lookup returns the connector of a source.
func (r *Registry) Lookup(source string) (firmbridge.Connector, bool) {
	// NewRegistry takes only sources that are trimmed and lower-case
	// already, so a source found as it is needs no clean-up, as nearly
	// every envelope's does not.
	if c, ok := r.bySource[source]; ok {
		return c, true
	}
	c, ok := r.bySource[strings.ToLower(strings.TrimSpace(source))]
	return c, ok
}

// Sources lists the registered sources in order.
func (r *Registry) Sources() []string { return slices.Clone(r.sources) }

// Normalize validates env, finds its connector and normalizes it. An
// envelope that cannot be accepted returns a *firmbridge.Reject: invalid
// envelope fields, RejectUnknownSource, RejectUnknownVersion, or whatever
// the connector rejects. A cancelled ctx returns ctx.Err().
func (r *Registry) Normalize(ctx context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return r.normalize(ctx, env, nil, ingestedAt)
}

// normalize is Normalize with, for a FieldsConnector, the payload's fields
// decoded already (when fields is not nil).
func (r *Registry) normalize(ctx context.Context, env firmbridge.Envelope, fields *Fields, ingestedAt time.Time) ([]firmbridge.Row, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := env.Validate(); err != nil {
		return nil, err
	}
	c, ok := r.Lookup(env.Source)
	if !ok {
		return nil, &firmbridge.Reject{Code: firmbridge.RejectUnknownSource, Field: "source",
			Message: fmt.Sprintf("no connector for source %q (known: %s)", env.Source, strings.Join(r.sources, ", "))}
	}
	if !slices.Contains(c.SchemaVersions(), env.SchemaVersion) {
		return nil, unknownVersion(c, env.SchemaVersion)
	}
	if fc, ok := c.(FieldsConnector); ok && fields != nil {
		l, err := Begin(fc, env, ingestedAt)
		if err != nil {
			return nil, err
		}
		return fc.NormalizeFields(env, l, *fields)
	}
	return c.Normalize(ctx, env, ingestedAt)
}

// NormalizeJSON decodes a raw envelope (see DecodeEnvelope) and normalizes
// it. A message that is not a JSON envelope is a RejectInvalidEnvelope.
// A JSON object payload is parsed with the envelope, once.
func (r *Registry) NormalizeJSON(ctx context.Context, envelope []byte, ingestedAt time.Time) ([]firmbridge.Row, error) {
	var env firmbridge.Envelope
	var fields Fields
	ok, fieldsSet := scanEnvelope(envelope, &env, &fields)
	if !ok {
		env, fields = firmbridge.Envelope{}, Fields{}
		ok, fieldsSet = decodeEnvelopeFast(envelope, &env, &fields)
	}
	switch {
	case fieldsSet:
		return r.normalize(ctx, env, &fields, ingestedAt)
	case ok:
		return r.normalize(ctx, env, nil, ingestedAt)
	}
	env, err := decodeEnvelopeRef(envelope)
	if err != nil {
		return nil, err
	}
	return r.Normalize(ctx, env, ingestedAt)
}

// A FieldsConnector normalizes records whose payload DecodeRecord decodes:
// its Normalize is NormalizeRecord, and the registry, which may have
// decoded the payload with the envelope, calls NormalizeFields directly.
type FieldsConnector interface {
	firmbridge.Connector
	// NormalizeFields makes the rows of a record: env passed Begin, which
	// returned l, and f is DecodeRecord(env).
	NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f Fields) ([]firmbridge.Row, error)
}

// NormalizeRecord is a FieldsConnector's Normalize: Begin, DecodeRecord,
// NormalizeFields.
func NormalizeRecord(c FieldsConnector, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	l, err := Begin(c, env, ingestedAt)
	if err != nil {
		return nil, err
	}
	f, err := DecodeRecord(env)
	if err != nil {
		return nil, err
	}
	return c.NormalizeFields(env, l, f)
}

func unknownVersion(c firmbridge.Connector, v firmbridge.SchemaVersion) *firmbridge.Reject {
	var vs []string
	for _, s := range c.SchemaVersions() {
		vs = append(vs, fmt.Sprint(s))
	}
	return &firmbridge.Reject{Code: firmbridge.RejectUnknownVersion, Field: "schema_version",
		Message: fmt.Sprintf("%s has no schema version %d (supported: %s)", c.Source(), v, strings.Join(vs, ", "))}
}

// MaxClockSkew is how far an envelope's observed_at may lie after the
// moment it is ingested. A row's version is its observed_at, so a record
// stamped far in the future would win over every later correction.
const MaxClockSkew = 24 * time.Hour

// Begin is the first step of every connector's Normalize: it validates the
// envelope, checks that it is for connector c in a version c supports and
// that observed_at is not more than MaxClockSkew after ingestedAt (skipped
// when ingestedAt is zero), and returns the lineage of the rows to make.
func Begin(c firmbridge.Connector, env firmbridge.Envelope, ingestedAt time.Time) (firmbridge.Lineage, error) {
	if err := env.Validate(); err != nil {
		return firmbridge.Lineage{}, err
	}
	if strings.ToLower(strings.TrimSpace(env.Source)) != c.Source() {
		return firmbridge.Lineage{}, &firmbridge.Reject{Code: firmbridge.RejectUnknownSource, Field: "source",
			Message: fmt.Sprintf("connector %s cannot normalize source %q", c.Source(), env.Source)}
	}
	if !slices.Contains(c.SchemaVersions(), env.SchemaVersion) {
		return firmbridge.Lineage{}, unknownVersion(c, env.SchemaVersion)
	}
	if !ingestedAt.IsZero() && env.ObservedAt.After(ingestedAt.Add(MaxClockSkew)) {
		return firmbridge.Lineage{}, &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Field: "observed_at",
			Message: fmt.Sprintf("observed_at %s is in the future", env.ObservedAt.UTC().Format(time.RFC3339))}
	}
	l := firmbridge.NewLineage(env, ingestedAt)
	l.Source = c.Source()
	return l, nil
}

// EnvelopeUSCC returns the envelope's uscc, normalized, or "" when it has
// none. An invalid one is a RejectInvalidUSCC on field "uscc".
func EnvelopeUSCC(env firmbridge.Envelope) (string, error) {
	if Fold(env.USCC) == "" {
		return "", nil
	}
	u, err := NormalizeUSCC(env.USCC)
	if err != nil {
		return "", &firmbridge.Reject{Code: firmbridge.RejectInvalidUSCC, Field: "uscc", Message: "envelope " + err.Error()}
	}
	return u, nil
}

// MatchUSCC checks that the envelope's uscc, when it has one, is the same
// firm as the payload's (after normalization of both); otherwise the record
// was keyed to the wrong firm and is a RejectUSCCMismatch.
func MatchUSCC(env firmbridge.Envelope, payloadUSCC string) error {
	u, err := EnvelopeUSCC(env)
	if err != nil || u == "" {
		return err
	}
	if u != payloadUSCC {
		return &firmbridge.Reject{Code: firmbridge.RejectUSCCMismatch, Field: "uscc",
			Message: fmt.Sprintf("envelope uscc %s differs from the payload's %s", u, payloadUSCC)}
	}
	return nil
}

// TableFirms is the table of firms as last seen in any source (created by
// schema migration 0001, not by the connectors).
const TableFirms = "firms"

// FirmRow is a firm named by a record: its USCC and its name as that record
// gives it. The newest observation of a USCC wins (ReplacingMergeTree on
// version, ORDER BY uscc).
type FirmRow struct {
	USCC    string
	Name    string
	Lineage firmbridge.Lineage
}

var firmColumns = WithLineage("uscc", "name")

// Table implements firmbridge.Row.
func (FirmRow) Table() string { return TableFirms }

// Columns implements firmbridge.Row.
func (FirmRow) Columns() []string { return firmColumns }

// Values implements firmbridge.Row.
func (f FirmRow) Values() []any { return LineageValues(f.Lineage, f.USCC, f.Name) }

// WithLineage returns a table's own columns followed by the lineage columns.
// The result is clipped, so appending to it never changes it.
func WithLineage(cols ...string) []string {
	return slices.Clip(append(slices.Clone(cols), firmbridge.LineageColumns...))
}

// LineageValues returns a row's own values followed by its lineage values.
func LineageValues(l firmbridge.Lineage, vals ...any) []any {
	// One slice of the final size: vals stays on the caller's stack.
	out := make([]any, len(vals), len(vals)+len(firmbridge.LineageColumns))
	copy(out, vals)
	return append(out, l.RecordID, l.Source, l.SchemaVersion, l.ObservedAt, l.IngestedAt, l.Version)
}

// Firm returns the firms row for a firm a record names, or nil when the
// record gives no name or no USCC for it.
func Firm(uscc, name string, l firmbridge.Lineage) firmbridge.Row {
	if uscc == "" || name == "" {
		return nil
	}
	return FirmRow{USCC: uscc, Name: name, Lineage: l}
}

// Rows collects rows, dropping nils.
func Rows(rows ...firmbridge.Row) []firmbridge.Row {
	out := make([]firmbridge.Row, 0, len(rows))
	for _, r := range rows {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}
