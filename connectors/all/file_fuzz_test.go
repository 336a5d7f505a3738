package all_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// FuzzSplitFile feeds arbitrary files to SplitFile in every format: no
// panic, file errors are EINVALID domain errors, record errors rejects, and
// every record has its line number, a record id and the requested source.
func FuzzSplitFile(f *testing.F) {
	reg := mustRegistry(f)
	dir := f.TempDir()
	files, err := synth.WriteFiles(dir, synth.Envelopes(2, synth.Firms(2, 2), 3, end, synth.Options{}))
	if err != nil {
		f.Fatal(err)
	}
	for _, pf := range files {
		b, err := os.ReadFile(filepath.Join(dir, pf.Name))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 4000 {
			b = b[:4000]
		}
		f.Add(b, pf.Source, "", "", "")
	}
	f.Add([]byte("a,b\n\"1,2\n\n\r\n{\n"), "ops.electricity", "csv", "gbk", "uscc,month")
	f.Add([]byte("{\"uscc\": 1}\n{"), "ops.water", "jsonl", "utf-8", "uscc")
	f.Add([]byte("{\"source\": \"x\", \"payload\": {}}\nnope"), "", "", "", "")
	f.Add([]byte("\xef\xbb\xbf\xc4\xe3,\xba\xc3\n"), "tax.vat_return", "", "", "")
	f.Fuzz(func(t *testing.T, data []byte, source, format, charset, idField string) {
		opt := connectors.FileOptions{Source: source, Format: format, Charset: charset, ObservedAt: end}
		if idField != "" {
			opt.RecordIDFields = []string{idField}
		}
		file, err := reg.SplitFile(bytes.NewReader(data), opt)
		if err != nil {
			if firmbridge.ErrorKind(err) != firmbridge.EINVALID || firmbridge.ErrorCode(err) == firmbridge.EINTERNAL {
				t.Fatalf("file error %v is not an EINVALID domain error", err)
			}
			return
		}
		last := 0
		for _, rec := range file.Records {
			if rec.Line <= last {
				t.Fatalf("record line %d after line %d", rec.Line, last)
			}
			last = rec.Line
			var rej *firmbridge.Reject
			if rec.Err != nil && !errors.As(rec.Err, &rej) {
				t.Fatalf("record error %v is not a reject", rec.Err)
			}
			if file.Format == connectors.FormatEnvelopes {
				continue
			}
			env := rec.Envelope
			if env.RecordID == "" || len(env.RecordID) > 256 || env.Source == "" || !env.ObservedAt.Equal(end) {
				t.Fatalf("line %d: envelope %+v lacks a record id, source or observed_at", rec.Line, env)
			}
			if err := env.Validate(); err != nil {
				t.Fatalf("line %d: envelope does not validate: %v", rec.Line, err)
			}
		}
	})
}
