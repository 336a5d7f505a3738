package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
)

const normalizeUsage = `Usage: firmbridge normalize [flags] [FILE|-]

Reads a provider export (CSV with its header line, or JSON lines) or a file
of envelopes (JSON lines) from FILE or standard input, normalizes every
record as ingest would, and prints one JSON line per canonical row
({"kind":"row",...}) or reject ({"kind":"reject",...}) on standard output
and a summary on standard error. The exit status is 0 whenever the file
could be read, even when records were rejected.

Flags:
`

// runNormalize is `firmbridge normalize`: the offline check providers run
// on an export before they send it. Splitting the file is
// connectors.Registry.SplitFile; this only wires flags and output.
func runNormalize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("firmbridge normalize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, normalizeUsage)
		fs.PrintDefaults()
	}
	source := fs.String("source", "", "provider source, e.g. tax.vat_return (required for provider files; for envelopes, every envelope must be of it)")
	format := fs.String("format", "auto", "auto, csv, jsonl or envelopes")
	charset := fs.String("charset", "", "charset of a provider file: utf-8, gb18030 or gbk (default: detected)")
	idFields := fs.String("record-id-field", "", "field(s) holding the record's natural key, comma-separated (default: a hash of source and line)")
	observed := fs.String("observed-at", "", "when the export was taken, RFC 3339 or YYYY-MM-DD in China time (default: now)")
	version := fs.Uint("schema-version", 1, "schema version of the provider file's records")
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) > 1 {
		return fmt.Errorf("normalize: one file at a time (got %s)", strings.Join(files, ", "))
	}
	if *version == 0 || *version > 65535 {
		return fmt.Errorf("normalize: --schema-version %d is not a version number", *version)
	}
	now := time.Now().UTC()
	observedAt := now
	if *observed != "" {
		t, err := parseObservedAt(*observed)
		if err != nil {
			return err
		}
		observedAt = t
	}
	opt := connectors.FileOptions{Source: *source, Charset: *charset, ObservedAt: observedAt,
		SchemaVersion: firmbridge.SchemaVersion(*version)}
	if *format != "auto" {
		opt.Format = *format
	}
	for _, f := range strings.Split(*idFields, ",") {
		if f = strings.TrimSpace(f); f != "" {
			opt.RecordIDFields = append(opt.RecordIDFields, f)
		}
	}

	var in io.Reader = os.Stdin
	name := "standard input"
	if len(files) == 1 && files[0] != "-" {
		f, err := os.Open(files[0])
		if err != nil {
			return fmt.Errorf("normalize: %w", err)
		}
		defer f.Close()
		in, name = f, files[0]
	}
	reg, err := all.Registry()
	if err != nil {
		return err
	}
	file, err := reg.SplitFile(in, opt)
	if err != nil {
		var fe *firmbridge.Error
		if errors.As(err, &fe) {
			return fmt.Errorf("normalize %s: %s", name, fe.Message)
		}
		return fmt.Errorf("normalize %s: %w", name, err)
	}

	out := bufio.NewWriterSize(stdout, 64<<10)
	sum := newSummary()
	var line bytes.Buffer
	for _, rec := range file.Records {
		env := rec.Envelope
		sum.record(env)
		err := rec.Err
		var rows []firmbridge.Row
		if err == nil {
			rows, err = reg.Normalize(ctx, env, now)
		}
		var rej *firmbridge.Reject
		switch {
		case err == nil:
			for _, r := range rows {
				line.Reset()
				if err := writeRow(&line, r); err != nil {
					return fmt.Errorf("normalize: record %s: %w", env.RecordID, err)
				}
				out.Write(line.Bytes())
				sum.rows[r.Table()]++
			}
		case errors.As(err, &rej):
			b, _ := json.Marshal(rejectLine{Kind: "reject", Code: rej.Code, Field: rej.Field, Message: rej.Message,
				RecordID: env.RecordID, Line: rec.Line, Source: env.Source})
			out.Write(b)
			out.WriteByte('\n')
			sum.rejects[rej.Code]++
		default:
			out.Flush()
			return fmt.Errorf("normalize: record %s (line %d): %w", env.RecordID, rec.Line, err)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("normalize: write output: %w", err)
	}
	sum.print(stderr, name, file, opt)
	return nil
}

func parseObservedAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, connectors.ChinaTime); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("normalize: --observed-at %q is neither RFC 3339 (2024-04-16T08:00:00+08:00) nor a date (2024-04-16)", s)
}

// rejectLine is one output line for a rejected record.
type rejectLine struct {
	Kind     string `json:"kind"`
	Code     string `json:"code"`
	Field    string `json:"field"`
	Message  string `json:"message"`
	RecordID string `json:"record_id"`
	Line     int    `json:"line"`
	Source   string `json:"source"`
}

// writeRow writes {"kind":"row","table":...,"row":{...}} with the columns
// in table order: decimals as strings with two decimals (every canonical
// Decimal is Decimal(18,2)), DateTime columns (named *_at) as RFC 3339 in
// UTC, Date columns as YYYY-MM-DD, missing Nullable values as null.
func writeRow(b *bytes.Buffer, r firmbridge.Row) error {
	cols, vals := r.Columns(), r.Values()
	if len(cols) != len(vals) {
		return fmt.Errorf("table %s: %d columns, %d values", r.Table(), len(cols), len(vals))
	}
	b.WriteString(`{"kind":"row","table":`)
	writeJSON(b, r.Table())
	b.WriteString(`,"row":{`)
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSON(b, c)
		b.WriteByte(':')
		writeJSON(b, jsonValue(c, vals[i]))
	}
	b.WriteString("}}\n")
	return nil
}

func writeJSON(b *bytes.Buffer, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		enc, _ = json.Marshal(fmt.Sprint(v))
	}
	b.Write(enc)
}

func jsonValue(col string, v any) any {
	switch x := v.(type) {
	case decimal.Decimal:
		return x.StringFixed(2)
	case *decimal.Decimal:
		if x == nil {
			return nil
		}
		return x.StringFixed(2)
	case time.Time:
		if strings.HasSuffix(col, "_at") {
			return x.UTC().Format(time.RFC3339)
		}
		return x.Format("2006-01-02")
	case *time.Time:
		if x == nil {
			return nil
		}
		return jsonValue(col, *x)
	}
	return v
}

// summary counts what a run read and produced.
type summary struct {
	records int
	ids     map[string]int
	rows    map[string]int
	rejects map[string]int
}

func newSummary() *summary {
	return &summary{ids: map[string]int{}, rows: map[string]int{}, rejects: map[string]int{}}
}

func (s *summary) record(env firmbridge.Envelope) {
	s.records++
	if env.RecordID != "" {
		s.ids[env.Source+"\x00"+env.RecordID]++
	}
}

func (s *summary) print(w io.Writer, name string, f *connectors.File, opt connectors.FileOptions) {
	what := f.Format
	if f.Charset != "" {
		what += ", " + f.Charset
	}
	if opt.Source != "" {
		what += ", source " + strings.ToLower(strings.TrimSpace(opt.Source))
	}
	fmt.Fprintf(w, "normalize: %d records read from %s (%s)\n", s.records, name, what)
	fmt.Fprintf(w, "rows: %d%s\n", total(s.rows), breakdown(s.rows))
	fmt.Fprintf(w, "rejects: %d%s\n", total(s.rejects), breakdown(s.rejects))
	dups := 0
	for _, n := range s.ids {
		dups += n - 1
	}
	if dups > 0 {
		fmt.Fprintf(w, "repeated record ids: %d (a repeat replaces the earlier record)\n", dups)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func breakdown(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
