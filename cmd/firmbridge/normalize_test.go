package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// outLine is one line of `firmbridge normalize` output, row or reject.
type outLine struct {
	Kind     string         `json:"kind"`
	Table    string         `json:"table"`
	Row      map[string]any `json:"row"`
	Code     string         `json:"code"`
	Field    string         `json:"field"`
	Message  string         `json:"message"`
	RecordID string         `json:"record_id"`
	Line     int            `json:"line"`
}

type normalizeResult struct {
	rows    []outLine
	rejects []outLine
	stderr  string
	err     error
}

func (r normalizeResult) tables() map[string]int {
	m := map[string]int{}
	for _, l := range r.rows {
		m[l.Table]++
	}
	return m
}

func (r normalizeResult) rowsOf(table string) []map[string]any {
	var out []map[string]any
	for _, l := range r.rows {
		if l.Table == table {
			out = append(out, l.Row)
		}
	}
	return out
}

func mustNormalize(t *testing.T, args ...string) normalizeResult {
	t.Helper()
	res := runNormalizeArgs(t, args...)
	if res.err != nil {
		t.Fatalf("normalize %v: %v\nstderr: %s", args, res.err, res.stderr)
	}
	return res
}

func runNormalizeArgs(t *testing.T, args ...string) normalizeResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"normalize"}, args...), &stdout, &stderr)
	res := normalizeResult{stderr: stderr.String(), err: err}
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if l == "" {
			continue
		}
		var o outLine
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("output line %q is not JSON: %v", l, err)
		}
		switch o.Kind {
		case "row":
			res.rows = append(res.rows, o)
		case "reject":
			res.rejects = append(res.rejects, o)
		default:
			t.Fatalf("output line %q has kind %q", l, o.Kind)
		}
	}
	return res
}

func writeFile(t *testing.T, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gb18030(t *testing.T, s string) []byte {
	t.Helper()
	b, err := connectors.EncodeGB18030(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const vatCSV = "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位\r\n" +
	"91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,\"1,234.56\",160.49,88.20,72.29,万元\r\n" +
	"\r\n" +
	"９１３５０１００ｍ０００１００ｙ４３,福州某某科技有限公司,2024-04-01,2024-04-30,45413,\"523,400.00\",\"68,042.00\",\"41,300.50\",\"26,741.50\",元\r\n"

func TestNormalize_VATReturnGB18030(t *testing.T) {
	path := writeFile(t, "vat.csv", gb18030(t, vatCSV))
	res := mustNormalize(t, "--source", "tax.vat_return", "--observed-at", "2024-06-01T09:00:00+08:00", path)
	if len(res.rejects) != 0 {
		t.Fatalf("rejects: %+v", res.rejects)
	}
	if got, want := res.tables(), map[string]int{"tax_vat_returns": 2, "firms": 2}; !maps.Equal(got, want) {
		t.Fatalf("rows by table = %v, want %v", got, want)
	}
	rows := res.rowsOf("tax_vat_returns")
	q1, apr := rows[0], rows[1]
	for col, want := range map[string]any{
		"uscc": "91350100M000100Y43", "taxpayer_name": "福州某某科技有限公司", "period_start": "2024-01-01",
		"period_end": "2024-03-31", "period_kind": "quarter", "filed_on": "2024-04-15", "sales": "12345600.00",
		"output_tax": "1604900.00", "tax_payable": "722900.00", "late": float64(0), "source": "tax.vat_return",
		"schema_version": float64(1), "observed_at": "2024-06-01T01:00:00Z",
	} {
		if q1[col] != want {
			t.Errorf("Q1 %s = %#v, want %#v", col, q1[col], want)
		}
	}
	if apr["filed_on"] != "2024-05-01" || apr["sales"] != "523400.00" || apr["period_kind"] != "month" {
		t.Errorf("April row = %v; want filed_on 2024-05-01 (Excel serial 45413), sales 523400.00, a month", apr)
	}
	if id, _ := q1["record_id"].(string); !strings.HasPrefix(id, "tax.vat_return:") || id == apr["record_id"] {
		t.Errorf("record ids %v, %v: want distinct tax.vat_return:<hash> ids", q1["record_id"], apr["record_id"])
	}
	for _, want := range []string{"2 records read", "csv, gb18030", "tax_vat_returns 2", "rejects: 0"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("summary %q lacks %q", res.stderr, want)
		}
	}

	// The same lines in UTF-8 get the same record ids: ids depend on the
	// record, not on the file's charset.
	utf := mustNormalize(t, "--source", "tax.vat_return", "--observed-at", "2024-06-01", writeFile(t, "vat-utf8.csv", []byte(vatCSV)))
	if got := utf.rowsOf("tax_vat_returns"); len(got) != 2 || got[0]["record_id"] != q1["record_id"] {
		t.Errorf("UTF-8 copy: rows %v, want record id %v", got, q1["record_id"])
	}
	if !strings.Contains(utf.stderr, "csv, utf-8") {
		t.Errorf("summary %q: want the charset detected as utf-8", utf.stderr)
	}

	// Declared GBK reads the same bytes.
	gbk := mustNormalize(t, "--source", "tax.vat_return", "--charset", "gbk", path)
	if len(gbk.rejects) != 0 || len(gbk.rowsOf("tax_vat_returns")) != 2 {
		t.Errorf("--charset gbk: %d rows, rejects %+v", len(gbk.rows), gbk.rejects)
	}
}

func TestNormalize_RecordIDField(t *testing.T) {
	path := writeFile(t, "vat.csv", gb18030(t, vatCSV))
	res := mustNormalize(t, "--source", "tax.vat_return", "--record-id-field", "纳税人识别号, 所属期起", path)
	rows := res.rowsOf("tax_vat_returns")
	if len(rows) != 2 {
		t.Fatalf("got %d VAT rows, rejects %+v", len(rows), res.rejects)
	}
	// The key is folded and upper-cased, so the full-width lower-case USCC
	// of the second line gives the same form.
	for i, want := range []string{"tax.vat_return:91350100M000100Y43|2024-01-01", "tax.vat_return:91350100M000100Y43|2024-04-01"} {
		if rows[i]["record_id"] != want {
			t.Errorf("row %d record_id = %v, want %s", i, rows[i]["record_id"], want)
		}
	}
	res = mustNormalize(t, "--source", "tax.vat_return", "--record-id-field", "申报编号", path)
	if len(res.rows) != 0 || len(res.rejects) != 2 || res.rejects[0].Code != "missing_field" || res.rejects[0].Field != "申报编号" {
		t.Errorf("missing key field: rows %d, rejects %+v; want 2 missing_field rejects on 申报编号", len(res.rows), res.rejects)
	}
}

func TestNormalize_ElectricityUTF8(t *testing.T) {
	csv := "account_no,uscc,month,consumption,unit,peak_kw,arrears\n" +
		"059100012345,91350100M000100Y43,2024-03,\"12,500.50\",kWh,85.5,\n" +
		"059100012345,91350100M000100Y43,202404,1.2345,万千瓦时,,0.00\n" +
		"059100012345,9135 0100-M000 100Y43,2024年5月,13000,度,90,\"1,200.00\"\n"
	res := mustNormalize(t, "--source", "ops.electricity", writeFile(t, "electricity.csv", []byte(csv)))
	if len(res.rejects) != 0 {
		t.Fatalf("rejects: %+v", res.rejects)
	}
	rows := res.rowsOf("ops_electricity")
	if len(rows) != 3 || len(res.rows) != 3 {
		t.Fatalf("got rows %v, want 3 ops_electricity rows", res.tables())
	}
	want := []struct{ month, kwh, arrears any }{
		{"2024-03-01", "12500.50", nil}, {"2024-04-01", "12345.00", "0.00"}, {"2024-05-01", "13000.00", "1200.00"}}
	for i, w := range want {
		if rows[i]["month"] != w.month || rows[i]["consumption_kwh"] != w.kwh || rows[i]["arrears"] != w.arrears {
			t.Errorf("row %d = %v, want month %v, consumption %v, arrears %v", i, rows[i], w.month, w.kwh, w.arrears)
		}
	}
	if rows[1]["peak_kw"] != nil {
		t.Errorf("empty peak_kw = %#v, want null", rows[1]["peak_kw"])
	}
}

func TestNormalize_WaterJSONLines(t *testing.T) {
	jsonl := `{"uscc": "91350100M000100Y43", "period": "2024-03", "volume_m3": "1,250"}
{"uscc": "91350100m000100y43", "period": "2024Q2", "volume_m3": "3,800吨"}

{"uscc": "91350100M000100Y43", "period": "2024-13", "volume_m3": "10"}
`
	res := mustNormalize(t, "--source", "ops.water", writeFile(t, "water.jsonl", []byte(jsonl)))
	rows := res.rowsOf("ops_water")
	if len(rows) != 2 || rows[0]["volume_m3"] != "1250.00" || rows[1]["period_kind"] != "quarter" || rows[1]["period_end"] != "2024-06-30" {
		t.Fatalf("water rows = %v", rows)
	}
	if len(res.rejects) != 1 || res.rejects[0].Code != "invalid_period" || res.rejects[0].Field != "period" || res.rejects[0].Line != 4 {
		t.Fatalf("rejects = %+v, want one invalid_period on line 4", res.rejects)
	}
	if !strings.Contains(res.stderr, "3 records read") || !strings.Contains(res.stderr, "invalid_period 1") {
		t.Errorf("summary %q", res.stderr)
	}
}

func TestNormalize_Envelopes(t *testing.T) {
	envs := `{"record_id":"r-1","source":"tax.credit_rating","schema_version":"v1","uscc":"91350100M000100Y43","observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100m000100y43","year":"2023年","rating":"A级"}}
{"record_id":"r-2","source":"ops.water","schema_version":1,"observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100M000100Y43","period":"2024-03","volume_m3":"80"}}
{"record_id":"r-3","source":"tax.vat_refund","schema_version":1,"observed_at":"2024-05-02T09:00:00+08:00","payload":{"x":1}}
{"record_id":"r-4","source":"ops.water","schema_version":1,"observed_at":"yesterday","payload":{}}
not json at all
`
	path := writeFile(t, "envelopes.jsonl", []byte(envs))
	res := mustNormalize(t, path)
	if got, want := res.tables(), map[string]int{"tax_credit_ratings": 1, "ops_water": 1}; !maps.Equal(got, want) {
		t.Errorf("rows by table = %v, want %v", got, want)
	}
	if r := res.rowsOf("tax_credit_ratings"); len(r) == 1 && (r[0]["record_id"] != "r-1" || r[0]["rating"] != "A" || r[0]["observed_at"] != "2024-05-02T01:00:00Z") {
		t.Errorf("rating row = %v", r[0])
	}
	want := []struct {
		code, field, id string
		line            int
	}{{"unknown_source", "source", "r-3", 3}, {"invalid_envelope", "envelope", "r-4", 4}, {"invalid_envelope", "envelope", "", 5}}
	if len(res.rejects) != len(want) {
		t.Fatalf("rejects = %+v, want %d", res.rejects, len(want))
	}
	for i, w := range want {
		r := res.rejects[i]
		if r.Code != w.code || r.Field != w.field || r.RecordID != w.id || r.Line != w.line || r.Message == "" {
			t.Errorf("reject %d = %+v, want %+v", i, r, w)
		}
	}

	// With --source, envelopes of other sources are rejected, not dropped.
	res = mustNormalize(t, "--source", "ops.water", path)
	if len(res.rows) != 1 || len(res.rejects) != 4 || res.rejects[0].RecordID != "r-1" || res.rejects[0].Field != "source" {
		t.Errorf("--source ops.water: rows %v, rejects %+v", res.tables(), res.rejects)
	}
}

func TestNormalize_MalformedRecords(t *testing.T) {
	csv := "account_no,uscc,month,consumption,unit,peak_kw,arrears\n" +
		"059100012345,91350100M000100Y43,2024-03,12500,kWh,,\n" +
		"059100012345,91350100M000100Y44,2024-03,12500,kWh,,\n" +
		"059100012345,91350100M000100Y43,2024-04,\"-1,200.00\",kWh,,\n" +
		"059100012345,91350100M000100Y43,2024-05,1.2.3,kWh,,\n" +
		"059100012345,91350100M000100Y43,2024-06,100,立方米,,\n" +
		"059100012345,91350100M000100Y43,2099-06,100,kWh,,\n" +
		"059100012345,91350100M000100Y43,2024-07\n" +
		"059100012345,,2024-08,100,kWh,,\n" +
		"\"059100012345,91350100M000100Y43,2024-09,100,kWh,,\n" +
		"059100012345,91350100M000100Y43,2024-03,12500,kWh,,\n"
	res := mustNormalize(t, "--source", "ops.electricity", "--observed-at", "2025-01-10", writeFile(t, "bad.csv", []byte(csv)))
	want := []struct {
		line        int
		code, field string
	}{
		{3, "invalid_uscc", "uscc"}, {4, "implausible_value", "consumption"}, {5, "invalid_amount", "consumption"},
		{6, "invalid_enum", "unit"}, {7, "future_period", "month"}, {8, "invalid_payload", "payload"},
		{9, "missing_field", "uscc"}, {10, "invalid_payload", "payload"},
	}
	if len(res.rejects) != len(want) {
		t.Fatalf("rejects = %+v, want %d", res.rejects, len(want))
	}
	for i, w := range want {
		r := res.rejects[i]
		if r.Line != w.line || r.Code != w.code || r.Field != w.field || r.Message == "" || r.RecordID == "" {
			t.Errorf("reject %d = %+v, want line %d %s on %s", i, r, w.line, w.code, w.field)
		}
	}
	if len(res.rows) != 2 {
		t.Errorf("rows = %v, want the 2 valid records", res.tables())
	}
	if !strings.Contains(res.stderr, "repeated record ids: 1") {
		t.Errorf("summary %q: want the repeated line reported", res.stderr)
	}

	// A JSON-lines record that is not a JSON object.
	res = mustNormalize(t, "--source", "ops.water", "--format", "jsonl",
		writeFile(t, "w.jsonl", []byte("{\"uscc\": \"91350100M000100Y43\", \"period\": \"2024-03\", \"volume_m3\": \"1\"}\n{\"uscc\": \n")))
	if len(res.rows) != 1 || len(res.rejects) != 1 || res.rejects[0].Code != "invalid_payload" || res.rejects[0].Line != 2 {
		t.Errorf("rows %v, rejects %+v; want 1 row and invalid_payload on line 2", res.tables(), res.rejects)
	}

	// GB18030 bytes in a file declared UTF-8: each such line is rejected.
	mixed := append([]byte("application_no,event_date,event_code,event_text,from_party,to_party\n"+
		"201710601862.3,2019-05-10,GRANT,授权,,\n"), gb18030(t, "201710601862.3,2020-06-01,LAPSE,未缴年费专利权终止,,\n")...)
	res = mustNormalize(t, "--source", "patent.legal_event", "--charset", "utf-8", writeFile(t, "le.csv", mixed))
	if len(res.rows) != 1 || len(res.rejects) != 1 || res.rejects[0].Code != "invalid_encoding" || res.rejects[0].Line != 3 {
		t.Errorf("rows %v, rejects %+v; want 1 row and invalid_encoding on line 3", res.tables(), res.rejects)
	}
}

func TestNormalize_FileErrors(t *testing.T) {
	electricity := writeFile(t, "electricity.csv", []byte("account_no,uscc,month,consumption,unit,peak_kw,arrears\n059100012345,91350100M000100Y43,2024-03,1,kWh,,\n"))
	water := writeFile(t, "water.jsonl", []byte(`{"uscc": "91350100M000100Y43", "period": "2024-03", "volume_m3": "1"}`+"\n"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong header", []string{"--source", "tax.vat_return", electricity}, "lacks 纳税人名称"},
		{"header of a JSON source", []string{"--source", "ops.water", electricity}, "lacks volume_m3"},
		{"unknown source", []string{"--source", "tax.vat_refund", electricity}, `no connector for source "tax.vat_refund"`},
		{"provider file without source", []string{water}, "needs its source"},
		{"missing file", []string{"--source", "ops.water", filepath.Join(t.TempDir(), "nope.jsonl")}, "no such file"},
		{"unknown charset", []string{"--source", "ops.water", "--charset", "latin1", water}, "charset"},
		{"bad observed-at", []string{"--source", "ops.water", "--observed-at", "soon", water}, "--observed-at"},
		{"unknown format", []string{"--source", "ops.water", "--format", "xml", water}, "format"},
		{"two files", []string{"--source", "ops.water", water, water}, "one file at a time"},
		{"empty CSV", []string{"--source", "ops.customs", "--format", "csv", writeFile(t, "empty.csv", nil)}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runNormalizeArgs(t, tt.args...)
			if res.err == nil || !strings.Contains(res.err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", res.err, tt.want)
			}
			if len(res.rows)+len(res.rejects) != 0 {
				t.Errorf("a file that cannot be read printed %d lines", len(res.rows)+len(res.rejects))
			}
		})
	}
	// "-" and no file both read standard input.
	for _, args := range [][]string{{"--source", "ops.water", "-"}, {"--source", "ops.water"}} {
		in, err := os.Open(water)
		if err != nil {
			t.Fatal(err)
		}
		stdin := os.Stdin
		os.Stdin = in
		res := runNormalizeArgs(t, args...)
		os.Stdin = stdin
		in.Close()
		if res.err != nil || len(res.rows) != 1 || !strings.Contains(res.stderr, "from standard input") {
			t.Errorf("%v: %v, rows %v, summary %q", args, res.err, res.tables(), res.stderr)
		}
	}
	// Flags after the file name are read too.
	if res := runNormalizeArgs(t, water, "--source", "ops.water"); res.err != nil || len(res.rows) != 1 {
		t.Errorf("flags after the file: %v, rows %v", res.err, res.tables())
	}
}

// TestNormalize_SynthFiles runs normalize on every file synth.WriteFiles
// writes (the demo data files): no rejects, every record read, and the same
// rows per table as normalizing the file's envelopes directly.
func TestNormalize_SynthFiles(t *testing.T) {
	end := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	envs := synth.Envelopes(5, synth.Firms(5, 12), 18, end, synth.Options{})
	dir := t.TempDir()
	files, err := synth.WriteFiles(dir, envs)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]bool{}
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			want := map[string]int{}
			for _, env := range f.Envelopes {
				rows, err := reg.Normalize(context.Background(), env, end)
				if err != nil {
					t.Fatalf("envelope %s: %v", env.RecordID, err)
				}
				for _, r := range rows {
					want[r.Table()]++
				}
			}
			args := []string{filepath.Join(dir, f.Name)}
			if f.Source != "" {
				args = append([]string{"--source", f.Source}, args...)
			}
			res := mustNormalize(t, args...)
			if len(res.rejects) != 0 {
				t.Fatalf("%d rejects, first %+v", len(res.rejects), res.rejects[0])
			}
			if got := res.tables(); !maps.Equal(got, want) {
				t.Errorf("rows by table = %v, want %v", got, want)
			}
			if !strings.Contains(res.stderr, fmt.Sprintf("%d records read", f.Records)) || !strings.Contains(res.stderr, "("+f.Format) {
				t.Errorf("summary %q: want %d records of format %s", res.stderr, f.Records, f.Format)
			}
			if f.Charset == connectors.CharsetGB18030 && !strings.Contains(res.stderr, "gb18030") {
				t.Errorf("summary %q: want the file read as GB18030", res.stderr)
			}
		})
		sources[f.Source] = true
	}
	for _, s := range reg.Sources() {
		if !sources[s] {
			t.Errorf("no file written for %s", s)
		}
	}
	if !sources[""] {
		t.Errorf("no %s written", synth.EnvelopesFile)
	}
}
