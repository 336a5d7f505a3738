package synth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

// EnvelopesFile is the name of the file WriteFiles writes every envelope to.
const EnvelopesFile = "envelopes.jsonl"

// gbSources are the sources whose providers export GB18030 files.
var gbSources = map[string]bool{tax.SourceVATReturn: true, operations.SourceCustoms: true}

// ProviderFile is one file written by WriteFiles.
type ProviderFile struct {
	Name    string // file name in the directory: "tax.vat_return.csv", "ops.water.jsonl", "envelopes.jsonl"
	Source  string // the provider source; "" for the envelopes file
	Format  string // connectors.FormatCSV, FormatJSONLines or FormatEnvelopes
	Charset string // connectors.CharsetGB18030 or CharsetUTF8
	Records int    // records in the file (lines after the header)
	// Envelopes are the envelopes whose records the file holds, in file order.
	Envelopes []firmbridge.Envelope
}

// WriteFiles writes envs into dir (created if needed) the way the
// providers export them: one file per source in the provider's own format,
// <source>.csv with its header line (GB18030 for tax.vat_return and
// ops.customs, UTF-8 otherwise) or <source>.jsonl with one JSON object per
// line, plus EnvelopesFile with every envelope as a JSON line. A provider
// file is a snapshot: it holds the newest version of each record (the
// envelope with the latest observed_at among those with its source and
// record id), so a patent application later granted appears once, granted.
// Files are listed by name. An envelope whose payload cannot be decoded
// (a corrupted base64 payload) is an error.
func WriteFiles(dir string, envs []firmbridge.Envelope) ([]ProviderFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	type key struct{ source, id string }
	latest := map[key]int{}
	bySource := map[string][]firmbridge.Envelope{}
	var all bytes.Buffer
	for _, env := range envs {
		b, err := json.Marshal(env)
		if err != nil {
			return nil, fmt.Errorf("synth: envelope %s: %w", env.RecordID, err)
		}
		all.Write(b)
		all.WriteByte('\n')
		k := key{env.Source, env.RecordID}
		if i, ok := latest[k]; ok {
			if !env.ObservedAt.Before(bySource[env.Source][i].ObservedAt) {
				bySource[env.Source][i] = env
			}
			continue
		}
		latest[k] = len(bySource[env.Source])
		bySource[env.Source] = append(bySource[env.Source], env)
	}
	files := []ProviderFile{{Name: EnvelopesFile, Format: connectors.FormatEnvelopes, Charset: connectors.CharsetUTF8,
		Records: len(envs), Envelopes: envs}}
	if err := os.WriteFile(filepath.Join(dir, EnvelopesFile), all.Bytes(), 0o644); err != nil {
		return nil, err
	}
	for source, list := range bySource {
		pf, body, err := providerFile(source, list)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, pf.Name), body, 0o644); err != nil {
			return nil, err
		}
		files = append(files, pf)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// providerFile renders the envelopes of one source as its provider's export.
func providerFile(source string, envs []firmbridge.Envelope) (ProviderFile, []byte, error) {
	pf := ProviderFile{Source: source, Charset: connectors.CharsetUTF8, Records: len(envs), Envelopes: envs,
		Name: source + ".jsonl", Format: connectors.FormatJSONLines}
	csv := envs[0].Header != ""
	if csv {
		pf.Name, pf.Format = source+".csv", connectors.FormatCSV
	}
	gb := csv && gbSources[source]
	if gb {
		pf.Charset = connectors.CharsetGB18030
	}
	var out bytes.Buffer
	if csv {
		if err := writeText(&out, envs[0].Header, gb); err != nil {
			return pf, nil, err
		}
	}
	for _, env := range envs {
		if csv != (env.Header != "") {
			return pf, nil, fmt.Errorf("synth: %s mixes CSV and JSON records", source)
		}
		line, err := recordBytes(env, gb)
		if err != nil {
			return pf, nil, fmt.Errorf("synth: envelope %s: %w", env.RecordID, err)
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return pf, out.Bytes(), nil
}

// recordBytes returns a record as its file holds it: the original bytes of
// a base64 payload in the file's charset, the line of a JSON-string
// payload, or the compacted JSON object.
func recordBytes(env firmbridge.Envelope, gb bool) ([]byte, error) {
	raw := bytes.TrimSpace(env.Payload)
	if len(raw) > 0 && raw[0] == '{' {
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if env.PayloadEncoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("payload is not valid base64")
		}
		text, err := connectors.DecodeCharset(b, env.Charset)
		if err != nil {
			return nil, err
		}
		if gb && strings.ToLower(env.Charset) != "utf-8" {
			return b, nil // GB18030 or GBK bytes, as they were sent
		}
		s = text
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("record spans several lines")
	}
	var b bytes.Buffer
	err := writeText(&b, s, gb)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

func writeText(w *bytes.Buffer, s string, gb bool) error {
	if gb {
		b, err := connectors.EncodeGB18030(s)
		if err != nil {
			return err
		}
		w.Write(b)
	} else {
		w.WriteString(s)
	}
	w.WriteByte('\n')
	return nil
}
