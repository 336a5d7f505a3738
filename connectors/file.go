package connectors

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/firmbridge/firmbridge"
)

// File formats SplitFile reads.
const (
	FormatAuto      = ""          // detect: JSON lines with source and payload are envelopes, other JSON lines provider records, anything else CSV
	FormatEnvelopes = "envelopes" // JSON lines, each a firmbridge.Envelope
	FormatCSV       = "csv"       // a provider's CSV export: a header line, then one record per line
	FormatJSONLines = "jsonl"     // a provider's JSON export: one JSON object per line
)

// Charsets of provider files, as SplitFile reports them.
const (
	CharsetUTF8    = "utf-8"
	CharsetGB18030 = "gb18030"
)

// A ColumnSource is a connector that says which fields a record of its
// source must have. Each column is the list of names it may go by, the
// provider's own name (the one PROVIDERS.md documents) first. SplitFile
// checks a CSV file's header against it; the connector itself reads its
// fields from the same declaration.
type ColumnSource interface {
	RequiredColumns() [][]string
}

// FileOptions say how to read a file.
type FileOptions struct {
	// Format is one of the Format* constants; FormatAuto detects it.
	Format string
	// Source is the provider source of a CSV or JSON-lines export
	// (required for them). For an envelope file it is optional: when set,
	// every envelope must be of that source.
	Source string
	// Charset is "" (detect: valid UTF-8 is UTF-8, anything else GB18030),
	// "utf-8", "gb18030" or "gbk". It applies to provider exports only;
	// envelope files are JSON and therefore UTF-8.
	Charset string
	// RecordIDFields names the fields that make up a record's natural key
	// (several for a composite key). When empty, the record id is derived
	// from the source and the record's content (see RecordID).
	RecordIDFields []string
	// ObservedAt is the observed_at of every envelope made from a provider
	// export: when the provider took the export. Required for them.
	ObservedAt time.Time
	// SchemaVersion of the envelopes made from a provider export; 0 means 1.
	SchemaVersion firmbridge.SchemaVersion
}

// File is a file split into records.
type File struct {
	Format  string // FormatEnvelopes, FormatCSV or FormatJSONLines
	Charset string // CharsetUTF8 or the GB charset read ("gb18030", "gbk"); "" for envelope files
	Header  string // a CSV file's header line, as UTF-8
	Records []FileRecord
}

// FileRecord is one record of a file: the envelope that carries it, or why
// it could not become one.
type FileRecord struct {
	// Line is the record's line number in the file, from 1.
	Line int
	// Envelope carries the record. For a provider export it is filled even
	// when Err is set (the line as a JSON string payload), so that the
	// original bytes can be dead-lettered; for an envelope file that could
	// not be decoded only RecordID is set, when it could be read.
	Envelope firmbridge.Envelope
	// Err is a *firmbridge.Reject when the line cannot be accepted before
	// it reaches a connector: an envelope line that is not an envelope or is
	// of another source, a JSON-lines record that is not a JSON object, a
	// record without its natural key. Everything else is for the connector
	// to judge.
	Err error
}

// SplitFile reads a whole file and splits it into one envelope per record,
// without normalizing them: pass each envelope to Normalize.
//
// A provider's CSV export has its header line first; every further line is
// one record (quoted fields spanning several lines are not supported: the
// providers' exports have none) and travels as the payload with the header
// in Header, exactly as ingest receives CSV records. UTF-8 lines travel as
// JSON strings, lines of a GB18030/GBK file as their original bytes,
// base64-encoded, with the charset. A JSON-lines export has one JSON object
// per line. Blank lines are skipped; a UTF-8 byte-order mark is dropped.
// Each envelope gets opt.ObservedAt, opt.SchemaVersion, no uscc (the
// connector reads the firm from the payload) and the record id of RecordID.
//
// Errors about the file as a whole are *firmbridge.Error of kind EINVALID:
// unknown_source, missing_source, header_mismatch, invalid_charset,
// invalid_file. A failing reader returns its error.
func (r *Registry) SplitFile(rd io.Reader, opt FileOptions) (*File, error) {
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read file: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := splitLines(data)

	format := opt.Format
	if format == FormatAuto {
		format = detectFormat(lines)
	}
	var conn firmbridge.Connector
	if opt.Source != "" {
		c, ok := r.Lookup(opt.Source)
		if !ok {
			return nil, fileError("unknown_source", "source", "no connector for source %q (known: %s)", opt.Source, strings.Join(r.sources, ", "))
		}
		conn = c
	}
	switch format {
	case FormatEnvelopes:
		return r.splitEnvelopes(lines, conn), nil
	case FormatCSV, FormatJSONLines:
	default:
		return nil, fileError("invalid_file", "format", "format %q is not one of envelopes, csv, jsonl", opt.Format)
	}
	if conn == nil {
		return nil, fileError("missing_source", "source", "a provider %s file needs its source (e.g. tax.vat_return)", format)
	}
	if opt.ObservedAt.IsZero() {
		return nil, fileError("invalid_file", "observed_at", "a provider file needs the time it was exported (observed_at)")
	}
	charset, err := fileCharset(opt.Charset, data)
	if err != nil {
		return nil, err
	}
	s := &splitter{source: conn.Source(), charset: charset, opt: opt}
	if s.opt.SchemaVersion == 0 {
		s.opt.SchemaVersion = 1
	}
	f := &File{Format: format, Charset: charset}
	if format == FormatCSV {
		i := 0
		for i < len(lines) && isBlank(lines[i].text) {
			i++
		}
		if i == len(lines) {
			return nil, fileError("invalid_file", "header", "the CSV file is empty: it needs a header line")
		}
		header, err := DecodeCharset(lines[i].text, charset)
		if err != nil {
			return nil, fileError("invalid_file", "header", "the header line is not valid %s", charset)
		}
		if err := checkHeader(conn, header); err != nil {
			return nil, err
		}
		f.Header, s.header = header, header
		lines = lines[i+1:]
	}
	for _, l := range lines {
		if isBlank(l.text) {
			continue
		}
		f.Records = append(f.Records, s.record(l, format))
	}
	return f, nil
}

func fileError(code, field, format string, args ...any) *firmbridge.Error {
	return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

type line struct {
	no   int
	text []byte // without the line break
}

func splitLines(data []byte) []line {
	var out []line
	for no := 1; len(data) > 0; no++ {
		l, rest, _ := bytes.Cut(data, []byte("\n"))
		out = append(out, line{no: no, text: bytes.TrimSuffix(l, []byte("\r"))})
		data = rest
	}
	return out
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// detectFormat looks at the first non-blank line: a JSON object with both
// "source" and "payload" is an envelope, another JSON object a provider
// record, anything else a CSV header.
func detectFormat(lines []line) string {
	for _, l := range lines {
		t := bytes.TrimSpace(l.text)
		if len(t) == 0 {
			continue
		}
		if t[0] != '{' {
			return FormatCSV
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(t, &probe) == nil {
			_, src := probe["source"]
			_, payload := probe["payload"]
			if src && payload {
				return FormatEnvelopes
			}
		}
		return FormatJSONLines
	}
	return FormatCSV
}

// fileCharset returns the charset of a provider export: the declared one,
// or UTF-8 when the whole file is valid UTF-8 and GB18030 otherwise.
func fileCharset(declared string, data []byte) (string, error) {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(declared)), "-", "") {
	case "":
		if utf8.Valid(data) {
			return CharsetUTF8, nil
		}
		return CharsetGB18030, nil
	case "utf8":
		return CharsetUTF8, nil
	case "gb18030":
		return CharsetGB18030, nil
	case "gbk", "gb2312", "cp936", "euccn":
		return "gbk", nil
	}
	return "", fileError("invalid_charset", "charset", "charset %q is not supported (want utf-8, gb18030 or gbk)", declared)
}

// checkHeader checks that a CSV header names every column the source
// requires, under any of the names the connector accepts.
func checkHeader(c firmbridge.Connector, header string) error {
	cs, ok := c.(ColumnSource)
	if !ok {
		return nil
	}
	names, err := readCSVLine(header)
	if err != nil {
		return fileError("header_mismatch", "header", "the header line is not a CSV line: %v", err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[fieldKey(n)] = true
	}
	var missing, want []string
	for _, col := range cs.RequiredColumns() {
		want = append(want, col[0])
		found := false
		for _, n := range col {
			found = found || have[fieldKey(n)]
		}
		if !found {
			missing = append(missing, col[0])
		}
	}
	if len(missing) > 0 {
		return fileError("header_mismatch", "header", "the header %q does not fit %s: it lacks %s (%s needs the columns %s)",
			header, c.Source(), strings.Join(missing, ", "), c.Source(), strings.Join(want, ","))
	}
	return nil
}

type splitter struct {
	source  string
	charset string
	header  string
	opt     FileOptions
}

func (s *splitter) record(l line, format string) FileRecord {
	raw := bytes.TrimSpace(l.text)
	env := firmbridge.Envelope{Source: s.source, SchemaVersion: s.opt.SchemaVersion, ObservedAt: s.opt.ObservedAt, Header: s.header}
	text, decErr := DecodeCharset(raw, s.charset)
	switch {
	case s.charset == CharsetUTF8 && decErr == nil && format == FormatJSONLines && raw[0] == '{' && json.Valid(raw):
		env.Payload = append(json.RawMessage(nil), raw...)
	case s.charset == CharsetUTF8 && decErr == nil:
		env.Payload, _ = json.Marshal(text)
	default:
		// Bytes in a legacy charset (or not valid in the declared one) travel
		// as they are; the connector decodes them or rejects the encoding.
		env.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(raw))
		env.PayloadEncoding, env.Charset = "base64", s.charset
	}
	rec := FileRecord{Line: l.no}
	if decErr != nil {
		text = string(raw)
	}
	env.RecordID = RecordID(s.source, text)
	if format == FormatJSONLines && decErr == nil {
		if t := strings.TrimSpace(text); !strings.HasPrefix(t, "{") || !json.Valid([]byte(t)) {
			rec.Err = &firmbridge.Reject{Code: firmbridge.RejectInvalidPayload, Field: "payload",
				Message: fmt.Sprintf("line %d is not a JSON object", l.no)}
		}
	}
	if len(s.opt.RecordIDFields) > 0 && rec.Err == nil && decErr == nil {
		if id, err := naturalID(s.source, env, s.opt.RecordIDFields); err != nil {
			rec.Err = err
		} else if id != "" {
			env.RecordID = id
		}
	}
	rec.Envelope = env
	return rec
}

// RecordID derives the record id of a provider record that has no natural
// key: the source and the first 128 bits of the SHA-256 of the source and
// the record's text (its line, decoded to UTF-8, without surrounding white
// space), in hex. The same line always gets the same id, whatever the file
// it comes in and whatever that file's charset, so a record re-sent
// unchanged replaces itself; a changed record is a new record.
func RecordID(source, text string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(strings.TrimSpace(text)))
	return source + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// naturalID returns source:value1|value2... of the named fields (folded,
// upper case, a USCC canonical), hashed when longer than 256 bytes. It
// returns "" without an error when the record cannot be decoded: the
// connector rejects it then.
func naturalID(source string, env firmbridge.Envelope, names []string) (string, error) {
	f, err := DecodeRecord(env)
	if err != nil {
		return "", nil
	}
	vals := make([]string, len(names))
	for i, n := range names {
		v, _, ok := f.Lookup(n)
		v = strings.ToUpper(Fold(v))
		if !ok || isMissing(v) {
			return "", &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: n,
				Message: fmt.Sprintf("%s is the record's key (record id) and is required", n)}
		}
		// A USCC is keyed in its canonical writing: "9135 0100 NK10 1933 68"
		// and "91350100NK10193368" are one firm, and one record. Its check
		// character keeps other values from passing for one.
		if uscc, err := NormalizeUSCC(v); err == nil {
			v = uscc
		}
		vals[i] = v
	}
	id := source + ":" + strings.Join(vals, "|")
	if len(id) > 256 {
		return RecordID(source, id), nil
	}
	return id, nil
}

// splitEnvelopes reads JSON lines of envelopes. When conn is set, each
// envelope must be of its source.
func (r *Registry) splitEnvelopes(lines []line, conn firmbridge.Connector) *File {
	f := &File{Format: FormatEnvelopes}
	for _, l := range lines {
		if isBlank(l.text) {
			continue
		}
		rec := FileRecord{Line: l.no}
		if err := json.Unmarshal(l.text, &rec.Envelope); err != nil {
			var probe struct {
				RecordID string `json:"record_id"`
				Source   string `json:"source"`
			}
			_ = json.Unmarshal(l.text, &probe)
			rec.Envelope = firmbridge.Envelope{RecordID: probe.RecordID, Source: probe.Source}
			rec.Err = &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Field: "envelope",
				Message: fmt.Sprintf("line %d is not an envelope: %s", l.no, jsonProblem(err))}
		} else if conn != nil && strings.ToLower(strings.TrimSpace(rec.Envelope.Source)) != conn.Source() {
			rec.Err = &firmbridge.Reject{Code: firmbridge.RejectInvalidEnvelope, Field: "source",
				Message: fmt.Sprintf("envelope of source %q in a file checked as %s", rec.Envelope.Source, conn.Source())}
		}
		f.Records = append(f.Records, rec)
	}
	return f
}

// jsonProblem describes a JSON decoding error without Go type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s has the wrong type (%s)", te.Field, te.Value)
	}
	return err.Error()
}
