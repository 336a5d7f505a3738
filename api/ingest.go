package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Limits of one POST /v1/ingest/{source} request, when the Server sets none.
const (
	DefaultMaxIngestBytes   = 32 << 20 // request body
	DefaultMaxIngestRecords = 50_000   // records (lines, or array elements)
	// MaxIngestRecordBytes bounds one record's payload and header: a bigger
	// one would not fit in a Kafka message (1 MiB by default) and would fail
	// the whole batch, so it is rejected on its own instead.
	MaxIngestRecordBytes = 512 << 10
)

// Statuses of the per-record results.
const (
	IngestAccepted = "accepted"
	IngestRejected = "rejected"
)

// Body formats of an ingest request (?format=).
const (
	ingestEnvelopes = "envelopes"
	ingestRecords   = "records"
)

// IngestRequest is a provider push, read from the HTTP request.
type IngestRequest struct {
	Source string // the path's {source}
	// Body is the request body: envelopes (JSON lines or a JSON array) or
	// a provider file; Options say which and how to read it.
	Body    []byte
	Array   bool // Body is a JSON array (of envelopes or records): each element is a line
	Options connectors.FileOptions
}

// IngestResult is the outcome of one record. Line is the record's line in
// the body, from 1 (its position, from 1, when the body is a JSON array).
type IngestResult struct {
	Line     int    `json:"line"`
	RecordID string `json:"record_id,omitempty"`
	Status   string `json:"status"`
	Code     string `json:"code,omitempty"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message,omitempty"`
}

// IngestResponse answers a push: every record accepted or rejected, in
// body order.
type IngestResponse struct {
	Accepted int            `json:"accepted"`
	Rejected int            `json:"rejected"`
	Results  []IngestResult `json:"results"`
}

func (s *Server) maxIngestBytes() int64 {
	if s.MaxIngestBytes > 0 {
		return s.MaxIngestBytes
	}
	return DefaultMaxIngestBytes
}

func (s *Server) maxIngestRecords() int {
	if s.MaxIngestRecords > 0 {
		return s.MaxIngestRecords
	}
	return DefaultMaxIngestRecords
}

// handleIngest is POST /v1/ingest/{source}. Pushing records is not access
// to firm data, so it writes no access event; its request id is in the
// logs and on every message it publishes.
func (s *Server) handleIngest(c *gin.Context) {
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	req, err := s.readIngest(c, id)
	if err != nil {
		writeError(c, s.logger(), err)
		return
	}
	resp, err := s.Ingest(c.Request.Context(), firmbridge.RawOrigin{Org: id.Org, RequestID: requestID(c)}, req)
	if err != nil {
		writeError(c, s.logger(), err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// readIngest reads the source, content type, query and body of a push by
// id.
func (s *Server) readIngest(c *gin.Context, id firmbridge.Identity) (IngestRequest, error) {
	source := c.Param("source")
	if s.Connectors == nil || s.Raw == nil {
		return IngestRequest{}, firmbridge.Errorf(firmbridge.EUNAVAILABLE, "ingest_unavailable", "this server does not accept provider pushes")
	}
	conn, ok := s.Connectors.Lookup(source)
	if !ok {
		return IngestRequest{}, &firmbridge.Error{Kind: firmbridge.ENOTFOUND, Code: "unknown_source", Field: "source",
			Message: fmt.Sprintf("no source %q; sources are %s", source, strings.Join(s.Connectors.Sources(), ", "))}
	}
	source = conn.Source()
	// A provider client registered for some scopes sends only their
	// sources; checked before the body is read.
	if scope := firmbridge.SourceScope(source); !id.Allows(scope) {
		return IngestRequest{}, insufficientScope(id, scope)
	}
	req := IngestRequest{Source: source, Options: connectors.FileOptions{Source: source}}

	mediaType, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	format := strings.ToLower(strings.TrimSpace(c.Query("format")))
	switch format {
	case "", ingestEnvelopes, ingestRecords:
	default:
		return req, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_format", Field: "format",
			Message: fmt.Sprintf("format %q is neither envelopes nor records", format)}
	}
	switch mediaType {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json":
		req.Options.Format = connectors.FormatEnvelopes
		if format == ingestRecords {
			req.Options.Format = connectors.FormatJSONLines
		}
	case "text/csv":
		if format == ingestEnvelopes {
			return req, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_format", Field: "format",
				Message: "envelopes travel as application/x-ndjson or application/json, not text/csv"}
		}
		req.Options.Format = connectors.FormatCSV
	default:
		return req, firmbridge.Errorf(firmbridge.EUNSUPPORTED, "unsupported_media_type",
			"Content-Type %q is not accepted: send envelopes as application/x-ndjson or application/json, "+
				"a provider CSV file as text/csv, provider JSON lines as application/x-ndjson with ?format=records",
			c.GetHeader("Content-Type"))
	}

	if req.Options.Format != connectors.FormatEnvelopes {
		// Options of a provider file, as `firmbridge normalize` takes them.
		// Envelope files are JSON, hence UTF-8: no charset applies.
		req.Options.Charset = params["charset"]
		if cs := c.Query("charset"); cs != "" {
			req.Options.Charset = cs
		}
		req.Options.ObservedAt = s.now().UTC()
		if v := c.Query("observed_at"); v != "" {
			t, err := parseIngestObservedAt(v)
			if err != nil {
				return req, err
			}
			// Every record of the file would be dead-lettered for it.
			if t.After(s.now().Add(connectors.MaxClockSkew)) {
				return req, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_observed_at", Field: "observed_at",
					Message: fmt.Sprintf("observed_at %s lies in the future", v)}
			}
			req.Options.ObservedAt = t
		}
		for _, f := range strings.Split(c.Query("record_id_field"), ",") {
			if f = strings.TrimSpace(f); f != "" {
				req.Options.RecordIDFields = append(req.Options.RecordIDFields, f)
			}
		}
		if v := c.Query("schema_version"); v != "" {
			var sv firmbridge.SchemaVersion
			if err := sv.UnmarshalJSON([]byte(strconv.Quote(v))); err != nil || sv == 0 {
				return req, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_schema_version", Field: "schema_version",
					Message: fmt.Sprintf("schema_version %q is not a version number", v)}
			}
			req.Options.SchemaVersion = sv
		}
	}

	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.maxIngestBytes()))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return req, firmbridge.Errorf(firmbridge.ETOOLARGE, "body_too_large",
				"the body is larger than %d bytes; split it into several requests", s.maxIngestBytes())
		}
		return req, firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "the body could not be read")
	}
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(body)) == 0 {
		return req, firmbridge.Errorf(firmbridge.EINVALID, "empty_body", "the body is empty: send at least one record")
	}
	req.Body = body
	req.Array = req.Options.Format != connectors.FormatCSV && bytes.TrimSpace(body)[0] == '['
	return req, nil
}

func parseIngestObservedAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, connectors.ChinaTime); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_observed_at", Field: "observed_at",
		Message: fmt.Sprintf("observed_at %q is neither RFC 3339 (2024-04-16T08:00:00+08:00) nor a date (2024-04-16)", s)}
}

// Ingest splits a push into records, checks each, publishes the accepted
// ones to the raw topic of the source's domain in one batch, and only after
// Kafka acknowledged them answers with a result per record.
//
// A record is checked as an envelope only: its structure
// (Envelope.Validate), its source (the path's), its schema version (one the
// source's connector supports) and its size. Its payload is not normalized
// here: ingest owns normalization and dead letters, so a record that is
// structurally fine is accepted, and if its payload turns out to be bad it
// is dead-lettered (dlq.<domain>.v1) with the reason. The provider can
// check a file beforehand with `firmbridge normalize`.
//
// When the publish fails nothing is reported accepted (EUNAVAILABLE,
// publish_unavailable), although some records may have reached the topic;
// re-sending the same request is safe, because record ids are stable (from
// the envelope, the natural key or a hash of the line) and a re-delivered
// record replaces itself.
func (s *Server) Ingest(ctx context.Context, origin firmbridge.RawOrigin, req IngestRequest) (*IngestResponse, error) {
	conn, ok := s.Connectors.Lookup(req.Source)
	if !ok {
		return nil, &firmbridge.Error{Kind: firmbridge.ENOTFOUND, Code: "unknown_source", Field: "source", Message: fmt.Sprintf("no source %q", req.Source)}
	}
	body := req.Body
	if req.Array {
		lines, err := ingestArrayLines(body, s.maxIngestRecords())
		if err != nil {
			return nil, err
		}
		body = lines
	} else if n := countIngestRecords(body, req.Options.Format == connectors.FormatCSV); n > s.maxIngestRecords() {
		return nil, ingestTooManyRecords(s.maxIngestRecords())
	}
	file, err := s.Connectors.SplitFile(bytes.NewReader(body), req.Options)
	if err != nil {
		return nil, err
	}
	if len(file.Records) == 0 {
		return nil, firmbridge.Errorf(firmbridge.EINVALID, "empty_body", "the body holds no records")
	}
	if len(file.Records) > s.maxIngestRecords() {
		return nil, ingestTooManyRecords(s.maxIngestRecords())
	}

	resp := &IngestResponse{Results: make([]IngestResult, len(file.Records))}
	accepted := make([]firmbridge.Envelope, 0, len(file.Records))
	for i, rec := range file.Records {
		res := IngestResult{Line: rec.Line, RecordID: rec.Envelope.RecordID}
		if err := checkEnvelope(conn, rec); err != nil {
			var rej *firmbridge.Reject
			if !errors.As(err, &rej) {
				return nil, err
			}
			res.Status, res.Code, res.Field, res.Message = IngestRejected, rej.Code, rej.Field, rej.Message
			resp.Rejected++
		} else {
			res.Status = IngestAccepted
			resp.Accepted++
			accepted = append(accepted, rec.Envelope)
		}
		resp.Results[i] = res
	}

	domain := firmbridge.SourceDomain(conn.Source())
	if len(accepted) == 0 {
		s.logger().Info("ingest: every record rejected", "request_id", origin.RequestID, "provider", origin.Org,
			"source", req.Source, "rejected", resp.Rejected)
		return resp, nil
	}
	if err := s.Raw.PublishRaw(ctx, domain, accepted, origin); err != nil {
		s.logger().Error("ingest: publish failed; nothing accepted", "request_id", origin.RequestID, "provider", origin.Org,
			"source", req.Source, "records", len(accepted), "err", err)
		return nil, firmbridge.Errorf(firmbridge.EUNAVAILABLE, "publish_unavailable",
			"the records could not be written to the raw topic, so none was accepted; re-send the whole request later "+
				"(records that did reach the topic replace themselves, their record ids being stable)")
	}
	s.logger().Info("ingest", "request_id", origin.RequestID, "provider", origin.Org, "source", req.Source,
		"format", file.Format, "charset", file.Charset, "accepted", resp.Accepted, "rejected", resp.Rejected)
	return resp, nil
}

// checkEnvelope is the whole check of a pushed record: see Ingest.
func checkEnvelope(conn firmbridge.Connector, rec connectors.FileRecord) error {
	if rec.Err != nil {
		return rec.Err
	}
	env := rec.Envelope
	if err := env.Validate(); err != nil {
		return err
	}
	// SplitFile has checked the source of envelope lines already; this
	// keeps the rule in one place for every format.
	if strings.ToLower(strings.TrimSpace(env.Source)) != conn.Source() {
		return &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Field: "source",
			Message: fmt.Sprintf("envelope of source %q pushed to %s", env.Source, conn.Source())}
	}
	if !slices.Contains(conn.SchemaVersions(), env.SchemaVersion) {
		var vs []string
		for _, v := range conn.SchemaVersions() {
			vs = append(vs, strconv.Itoa(int(v)))
		}
		return &firmbridge.Reject{Code: firmbridge.RejectUnknownVersion, Field: "schema_version",
			Message: fmt.Sprintf("%s has no schema version %d (supported: %s)", conn.Source(), env.SchemaVersion, strings.Join(vs, ", "))}
	}
	if n := len(env.Payload) + len(env.Header); n > MaxIngestRecordBytes {
		return &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Field: "payload",
			Message: fmt.Sprintf("the record is %d bytes; at most %d are accepted", n, MaxIngestRecordBytes)}
	}
	return nil
}

func ingestTooManyRecords(max int) error {
	return firmbridge.Errorf(firmbridge.ETOOLARGE, "too_many_records", "a request may carry at most %d records; split it into several requests", max)
}

// countIngestRecords counts the records of a body without splitting it: its
// non-blank lines, less the header line of a CSV file.
func countIngestRecords(body []byte, csv bool) int {
	n := 0
	for len(body) > 0 {
		l, rest, _ := bytes.Cut(body, []byte("\n"))
		if len(bytes.TrimSpace(l)) > 0 {
			n++
		}
		body = rest
	}
	if csv && n > 0 {
		n--
	}
	return n
}

// ingestArrayLines turns a JSON array into JSON lines, one compact element a
// line, so that SplitFile reads it and element i is line i+1. It stops at
// more than max elements without reading further.
func ingestArrayLines(body []byte, max int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	invalid := func(err error) error {
		return firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "the body is not a JSON array of records: %s", ingestJSONProblem(err))
	}
	if _, err := dec.Token(); err != nil { // '[', checked by the caller
		return nil, invalid(err)
	}
	var out bytes.Buffer
	for n := 0; dec.More(); n++ {
		if n == max {
			return nil, ingestTooManyRecords(max)
		}
		var elem json.RawMessage
		if err := dec.Decode(&elem); err != nil {
			return nil, invalid(err)
		}
		if err := json.Compact(&out, elem); err != nil {
			return nil, invalid(err)
		}
		out.WriteByte('\n')
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, invalid(err)
	}
	if dec.More() {
		return nil, invalid(errors.New("data after the array"))
	}
	return out.Bytes(), nil
}

// ingestJSONProblem describes a JSON decoding error without Go type names.
func ingestJSONProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of the body"
	}
	return "invalid JSON"
}
