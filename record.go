package firmbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Envelope is the JSON wrapper every raw record travels in on raw.<domain>.v1.
// Payload carries the provider's own record unchanged: a JSON object, or a
// JSON string holding one CSV line (with the file's header line in Header) or
// an XML element. A payload in a legacy encoding (GB18030/GBK) cannot live in
// a JSON string as raw bytes, so it travels base64-encoded with
// PayloadEncoding "base64" and its character set in Charset.
type Envelope struct {
	RecordID        string          `json:"record_id"`
	Source          string          `json:"source"`
	SchemaVersion   SchemaVersion   `json:"schema_version"`
	USCC            string          `json:"uscc,omitempty"`
	ObservedAt      time.Time       `json:"observed_at"`
	Payload         json.RawMessage `json:"payload"`
	Header          string          `json:"header,omitempty"`
	PayloadEncoding string          `json:"payload_encoding,omitempty"` // "" or "base64"
	Charset         string          `json:"charset,omitempty"`          // "", "utf-8", "gb18030", "gbk"
}

// SchemaVersion is a source's payload version. Providers send it as a number
// or as a string ("1", "v1"); both decode to the same value.
type SchemaVersion uint16

// UnmarshalJSON accepts 1, "1" and "v1".
func (v *SchemaVersion) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if uq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(uq), "v"), "V")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("schema_version %s is not a version number", string(b))
	}
	*v = SchemaVersion(n)
	return nil
}

// Validate checks the fields every envelope must carry, whatever its source.
func (e *Envelope) Validate() error {
	switch {
	case strings.TrimSpace(e.RecordID) == "":
		return &Reject{Code: RejectMissingField, Field: "record_id", Message: "record_id is required"}
	case len(e.RecordID) > 256:
		return &Reject{Code: RejectInvalidEnvelope, Field: "record_id", Message: "record_id is longer than 256 bytes"}
	case strings.TrimSpace(e.Source) == "":
		return &Reject{Code: RejectMissingField, Field: "source", Message: "source is required"}
	case e.SchemaVersion == 0:
		return &Reject{Code: RejectMissingField, Field: "schema_version", Message: "schema_version is required"}
	case e.ObservedAt.IsZero():
		return &Reject{Code: RejectMissingField, Field: "observed_at", Message: "observed_at is required"}
	case len(e.Payload) == 0 || string(e.Payload) == "null":
		return &Reject{Code: RejectMissingField, Field: "payload", Message: "payload is required"}
	}
	return nil
}

// SourceDomain returns the data domain of a source name: "tax.vat_return" → "tax",
// "ops.water" → "operations".
func SourceDomain(source string) string {
	prefix, _, _ := strings.Cut(source, ".")
	switch prefix {
	case "tax":
		return DomainTax
	case "patent":
		return DomainPatent
	case "ops":
		return DomainOperations
	}
	return ""
}

// Lineage is carried by every canonical row: where it came from and which
// version of the record it is. Version is derived from ObservedAt so that a
// re-sent record replaces itself and a correction (same record id, newer
// observed_at) replaces the older row.
type Lineage struct {
	RecordID      string
	Source        string
	SchemaVersion uint16
	ObservedAt    time.Time
	IngestedAt    time.Time
	Version       uint64
}

// LineageColumns are the lineage columns, in the order LineageValues returns them.
var LineageColumns = []string{"record_id", "source", "schema_version", "observed_at", "ingested_at", "version"}

// NewLineage derives the lineage of rows made from env, ingested at ingestedAt.
func NewLineage(env Envelope, ingestedAt time.Time) Lineage {
	return Lineage{
		RecordID:      env.RecordID,
		Source:        env.Source,
		SchemaVersion: uint16(env.SchemaVersion),
		ObservedAt:    env.ObservedAt.UTC(),
		IngestedAt:    ingestedAt.UTC(),
		Version:       VersionOf(env.ObservedAt),
	}
}

// VersionOf turns an observation time into a row version: microseconds since
// the Unix epoch, monotonic in observed_at.
func VersionOf(observedAt time.Time) uint64 {
	us := observedAt.UnixMicro()
	if us < 0 {
		return 0
	}
	return uint64(us)
}

// Values returns the lineage values in LineageColumns order.
func (l Lineage) Values() []any {
	return []any{l.RecordID, l.Source, l.SchemaVersion, l.ObservedAt, l.IngestedAt, l.Version}
}

// Row is one canonical row, ready to be appended to a ClickHouse batch.
// Columns and Values have the same length and order; Table names the
// canonical table. Rows are made by connectors and written by ingest, which
// never needs to know their shape.
type Row interface {
	Table() string
	Columns() []string
	Values() []any
}

// Connector normalizes one provider source into canonical rows. It is pure:
// no I/O, no clock (ingestedAt is passed in), safe for concurrent use.
type Connector interface {
	// Source is the name providers put in the envelope, e.g. "tax.vat_return".
	Source() string
	// SchemaVersions lists the payload versions this connector understands.
	SchemaVersions() []SchemaVersion
	// Normalize turns one envelope into rows. A record that can never be
	// accepted returns a *Reject (dead-letter it and move on).
	Normalize(ctx context.Context, env Envelope, ingestedAt time.Time) ([]Row, error)
}

// Reject codes: stable, documented reasons a record is dead-lettered.
const (
	RejectInvalidEnvelope  = "invalid_envelope"
	RejectMissingField     = "missing_field"
	RejectUnknownSource    = "unknown_source"
	RejectUnknownVersion   = "unknown_schema_version"
	RejectInvalidPayload   = "invalid_payload"
	RejectInvalidEncoding  = "invalid_encoding"
	RejectInvalidUSCC      = "invalid_uscc"
	RejectInvalidAmount    = "invalid_amount"
	RejectInvalidPeriod    = "invalid_period"
	RejectInvalidDate      = "invalid_date"
	RejectInvalidEnum      = "invalid_enum"
	RejectInvalidPatentNo  = "invalid_application_no"
	RejectImplausible      = "implausible_value"
	RejectUSCCMismatch     = "uscc_mismatch"
	RejectFuturePeriod     = "future_period"
	RejectInconsistentData = "inconsistent_values"
)

// Reject says why a record cannot be accepted. It is a poison-record error:
// retrying will not help; the record goes to the dead-letter topic with it.
type Reject struct {
	Code    string // one of the Reject* codes
	Field   string // the offending field, when there is one
	Message string // for the provider, in plain words
}

func (r *Reject) Error() string {
	if r.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", r.Code, r.Message, r.Field)
	}
	return fmt.Sprintf("%s: %s", r.Code, r.Message)
}
