package connectors_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

func TestNormalizeUSCC(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"91350100M000100Y43", "91350100M000100Y43", false},
		{"91350100m000100y43", "91350100M000100Y43", false},
		{" 9135 0100-M000 100Y43 ", "91350100M000100Y43", false},
		{"９１３５０１００Ｍ０００１００Ｙ４３", "91350100M000100Y43", false},
		{"91350100－M000100Y43", "91350100M000100Y43", false},
		{"91350100M000100Y44", "", true},  // wrong check character
		{"91350100M000100Y4", "", true},   // too short
		{"91350100M000100Y433", "", true}, // too long
		{"91350100I000100Y43", "", true},  // I is not in the alphabet
		{"", "", true},
	}
	for _, tt := range tests {
		got, err := connectors.NormalizeUSCC(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("NormalizeUSCC(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, connectors.ErrInvalidUSCC) && !errors.Is(err, connectors.ErrMissing) {
			t.Errorf("NormalizeUSCC(%q) error %v wraps neither ErrInvalidUSCC nor ErrMissing", tt.in, err)
		}
	}
}

func TestCheckChar(t *testing.T) {
	tests := []struct {
		first17 string
		want    byte
	}{
		{"91350100M000100Y4", '3'},
		{"91110000100000000", 'R'}, // so PROVIDERS.md's sample party code 91110000100000000X is invalid
		{"91110000100000002", '0'}, // Σ mod 31 = 0: 31 is written 0
	}
	for _, tt := range tests {
		got, err := connectors.CheckChar(tt.first17)
		if err != nil || got != tt.want {
			t.Errorf("CheckChar(%q) = %q, %v; want %q", tt.first17, got, err, tt.want)
		}
		if !connectors.ValidUSCC(tt.first17 + string(got)) {
			t.Errorf("ValidUSCC(%q) = false, want true", tt.first17+string(got))
		}
	}
	if _, err := connectors.CheckChar("91350100O000100Y4"); err == nil {
		t.Error("CheckChar with an O: got no error")
	}
	if connectors.ValidUSCC("91350100m000100y43") {
		t.Error("ValidUSCC accepts lower case; it must only accept canonical codes")
	}
}

func TestParseYuan(t *testing.T) {
	tests := []struct {
		in, unit string
		want     string
		err      error // nil: no error; ErrMissing; errAny: some other error
	}{
		{"1,234.56", "", "1234.56", nil},
		{"3,120,500.00", "", "3120500", nil},
		{"12.5万", "", "125000", nil},
		{"98.6万元", "", "986000", nil},
		{"1.2亿元", "", "120000000", nil},
		{"1,234.56", "万元", "12345600", nil},
		{"160.49", "万元", "1604900", nil},
		{"12.5万", "万元", "125000", nil},
		{"１，２３４．５６", "", "1234.56", nil},
		{"￥8,560.00", "", "8560", nil},
		{"-35.10", "元", "-35.1", nil},
		{"(1,000.00)", "", "-1000", nil},
		{"0.86万", "", "8600", nil},
		{"元", "", "", connectors.ErrMissing},
		{"", "万元", "", connectors.ErrMissing},
		{"--", "", "", connectors.ErrMissing},
		{"1.234", "", "", errAny},      // below one fen
		{"1.2345678万", "", "", errAny}, // below one fen after scaling
		{"1,2345", "", "", errAny},     // misplaced separator
		{"12..5", "", "", errAny},
		{"十二万", "", "", errAny},
		{"1234元", "万元", "", errAny}, // conflicting units
		{"100", "千克", "", connectors.ErrUnknownUnit},
		{"1e6", "", "", errAny},
		{"99999999999999999", "", "", errAny}, // does not fit Decimal(18,2)
	}
	for _, tt := range tests {
		got, err := connectors.ParseYuan(tt.in, tt.unit)
		switch {
		case tt.err == nil && err != nil:
			t.Errorf("ParseYuan(%q, %q): unexpected error %v", tt.in, tt.unit, err)
		case tt.err == nil && !got.Equal(decimal.RequireFromString(tt.want)):
			t.Errorf("ParseYuan(%q, %q) = %s, want %s", tt.in, tt.unit, got, tt.want)
		case tt.err == errAny && err == nil:
			t.Errorf("ParseYuan(%q, %q) = %s, want an error", tt.in, tt.unit, got)
		case tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
			t.Errorf("ParseYuan(%q, %q) error = %v, want %v", tt.in, tt.unit, err, tt.err)
		}
	}
}

var errAny = errors.New("any error")

func TestParseMoney_KeepsCurrency(t *testing.T) {
	tests := []struct {
		amount, cur string
		want        string
		wantCur     string
	}{
		{"1,073,640.95", "USD", "1073640.95", "USD"},
		{"12.5万", "502", "125000", "USD"},
		{"2,000.00", "欧元", "2000", "EUR"},
		{"98.6万元", "人民币", "986000", "CNY"},
	}
	for _, tt := range tests {
		got, err := connectors.ParseMoney(tt.amount, tt.cur)
		if err != nil || got.Currency != tt.wantCur || !got.Amount.Equal(decimal.RequireFromString(tt.want)) {
			t.Errorf("ParseMoney(%q, %q) = %v %s, %v; want %s %s", tt.amount, tt.cur, got.Amount, got.Currency, err, tt.want, tt.wantCur)
		}
	}
	if _, err := connectors.ParseMoney("1.00", "XYZ"); !errors.Is(err, connectors.ErrUnknownUnit) {
		t.Errorf("ParseMoney with currency XYZ: got %v, want ErrUnknownUnit", err)
	}
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in         string
		kind       connectors.PeriodKind
		start, end string
	}{
		{"2024-03", connectors.PeriodMonth, "2024-03-01", "2024-03-31"},
		{"202402", connectors.PeriodMonth, "2024-02-01", "2024-02-29"},
		{"2024年3月", connectors.PeriodMonth, "2024-03-01", "2024-03-31"},
		{"2024年12月份", connectors.PeriodMonth, "2024-12-01", "2024-12-31"},
		{"２０２４－０３", connectors.PeriodMonth, "2024-03-01", "2024-03-31"},
		{"2024Q1", connectors.PeriodQuarter, "2024-01-01", "2024-03-31"},
		{"2024-q4", connectors.PeriodQuarter, "2024-10-01", "2024-12-31"},
		{"2024年第一季度", connectors.PeriodQuarter, "2024-01-01", "2024-03-31"},
		{"2024年 第二季度", connectors.PeriodQuarter, "2024-04-01", "2024-06-30"},
		{"2024年3季度", connectors.PeriodQuarter, "2024-07-01", "2024-09-30"},
		{"2023年", connectors.PeriodYear, "2023-01-01", "2023-12-31"},
	}
	for _, tt := range tests {
		p, err := connectors.ParsePeriod(tt.in)
		if err != nil || p.Kind != tt.kind || p.Start.Format("2006-01-02") != tt.start || p.End.Format("2006-01-02") != tt.end {
			t.Errorf("ParsePeriod(%q) = %v %s..%s, %v; want %v %s..%s", tt.in, p.Kind, p.Start.Format("2006-01-02"), p.End.Format("2006-01-02"), err, tt.kind, tt.start, tt.end)
		}
	}
	for _, bad := range []string{"2024-13", "202413", "2024年第五季度", "2024Q5", "24-03", "1969-12", "March 2024"} {
		if p, err := connectors.ParsePeriod(bad); err == nil {
			t.Errorf("ParsePeriod(%q) = %v, want an error", bad, p)
		}
	}
	if _, err := connectors.ParsePeriod(""); !errors.Is(err, connectors.ErrMissing) {
		t.Errorf("ParsePeriod(\"\") error = %v, want ErrMissing", err)
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2024-04-15", "2024-04-15"},
		{"2024-4-5", "2024-04-05"},
		{"20230115", "2023-01-15"},
		{"2024/06/30", "2024-06-30"},
		{"2024年4月15日", "2024-04-15"},
		{"2024-04-15 10:30:00", "2024-04-15"},
		{"2024-04-15T10:30:00+08:00", "2024-04-15"},
		{"45397", "2024-04-15"}, // Excel serial
		{"45397.75", "2024-04-15"},
	}
	for _, tt := range tests {
		got, err := connectors.ParseDate(tt.in)
		if err != nil || got.Format("2006-01-02") != tt.want || got.Location() != time.UTC {
			t.Errorf("ParseDate(%q) = %v, %v; want %s UTC", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"2024-02-30", "2023-02-29", "20241301", "2024-04-15 lunch", "yesterday", "60", "61" /* 1900: before what a ClickHouse Date holds */} {
		if got, err := connectors.ParseDate(bad); err == nil {
			t.Errorf("ParseDate(%q) = %v, want an error", bad, got)
		}
	}
}

func TestPeriodFromDates(t *testing.T) {
	d := func(s string) time.Time { t, _ := connectors.ParseDate(s); return t }
	tests := []struct {
		start, end string
		want       string
		ok         bool
	}{
		{"2024-01-01", "2024-03-31", "2024Q1", true},
		{"2024-02-01", "2024-02-29", "2024-02", true},
		{"2024-01-01", "2024-12-31", "2024", true},
		{"2024-01-02", "2024-03-31", "", false},
		{"2024-01-01", "2024-02-29", "", false},
	}
	for _, tt := range tests {
		p, err := connectors.PeriodFromDates(d(tt.start), d(tt.end))
		if (err == nil) != tt.ok || (tt.ok && p.String() != tt.want) {
			t.Errorf("PeriodFromDates(%s, %s) = %s, %v; want %s ok=%v", tt.start, tt.end, p, err, tt.want, tt.ok)
		}
	}
}

func TestEnum(t *testing.T) {
	e := connectors.NewEnum("direction", map[string][]string{"import": {"I", "进口"}, "export": {"E", "出口"}})
	for in, want := range map[string]string{"I": "import", " ｅ ": "export", "进口": "import", "EXPORT": "export"} {
		if got, err := e.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := e.Parse("X"); !errors.Is(err, connectors.ErrUnknownValue) {
		t.Errorf("Parse(X) error = %v, want ErrUnknownValue", err)
	}
}

func TestDecodeRecord(t *testing.T) {
	line := "91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,\"1,234.56\",160.49,88.20,72.29,万元"
	header := "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	gb, err := connectors.EncodeGB18030(line)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) json.RawMessage { s, _ := json.Marshal(base64.StdEncoding.EncodeToString(b)); return s }
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	tests := []struct {
		name string
		env  firmbridge.Envelope
	}{
		{"CSV line in a JSON string", firmbridge.Envelope{Payload: str(line), Header: header}},
		{"GB18030 base64", firmbridge.Envelope{Payload: b64(gb), Header: header, PayloadEncoding: "base64", Charset: "gb18030"}},
		{"GBK label", firmbridge.Envelope{Payload: b64(gb), Header: header, PayloadEncoding: "base64", Charset: "GBK"}},
		{"undeclared charset, GB18030 bytes", firmbridge.Envelope{Payload: b64(gb), Header: header, PayloadEncoding: "base64"}},
		{"undeclared charset, UTF-8 bytes", firmbridge.Envelope{Payload: b64([]byte(line)), Header: header, PayloadEncoding: "base64"}},
		{"header inside the payload", firmbridge.Envelope{Payload: str(header + "\r\n" + line + "\r\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := connectors.DecodeRecord(tt.env)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if got := f.Get("纳税人名称"); got != "福州某某科技有限公司" {
				t.Errorf("纳税人名称 = %q, want 福州某某科技有限公司", got)
			}
			if got := f.Get("销售额"); got != "1,234.56" {
				t.Errorf("销售额 = %q, want 1,234.56", got)
			}
		})
	}

	f, err := connectors.DecodeRecord(firmbridge.Envelope{Payload: []byte(`{"USCC": "x", "tax_year": 2023, "grant_date": null, "ipc": ["H01M 10/42"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if f.Get("uscc") != "x" || f.Get("tax_year") != "2023" || f.Get("grant_date") != "" {
		t.Errorf("JSON fields: got uscc %q tax_year %q grant_date %q", f.Get("uscc"), f.Get("tax_year"), f.Get("grant_date"))
	}
	if raw, ok := f.Raw("ipc"); !ok || string(raw) != `["H01M 10/42"]` {
		t.Errorf("Raw(ipc) = %s, %v", raw, ok)
	}

	bad := []struct {
		name string
		env  firmbridge.Envelope
		code string
	}{
		{"bad base64", firmbridge.Envelope{Payload: str("%%%"), PayloadEncoding: "base64", Header: header}, firmbridge.RejectInvalidEncoding},
		{"unknown charset", firmbridge.Envelope{Payload: b64(gb), PayloadEncoding: "base64", Charset: "big5", Header: header}, firmbridge.RejectInvalidEncoding},
		{"GB18030 declared as UTF-8", firmbridge.Envelope{Payload: b64(gb), PayloadEncoding: "base64", Charset: "utf-8", Header: header}, firmbridge.RejectInvalidEncoding},
		{"unknown payload encoding", firmbridge.Envelope{Payload: str(line), PayloadEncoding: "gzip", Header: header}, firmbridge.RejectInvalidEncoding},
		{"field count", firmbridge.Envelope{Payload: str("a,b"), Header: header}, firmbridge.RejectInvalidPayload},
		{"no header", firmbridge.Envelope{Payload: str(line)}, firmbridge.RejectMissingField},
		{"JSON array", firmbridge.Envelope{Payload: []byte(`[1,2]`)}, firmbridge.RejectInvalidPayload},
		{"two lines", firmbridge.Envelope{Payload: str(line + "\n" + line), Header: header}, firmbridge.RejectInvalidPayload},
	}
	for _, tt := range bad {
		_, err := connectors.DecodeRecord(tt.env)
		var rej *firmbridge.Reject
		if !errors.As(err, &rej) || rej.Code != tt.code {
			t.Errorf("%s: got %v, want reject %s", tt.name, err, tt.code)
		}
	}
}

type fake struct{ source string }

func (f fake) Source() string                           { return f.source }
func (fake) SchemaVersions() []firmbridge.SchemaVersion { return []firmbridge.SchemaVersion{1} }
func (fake) Normalize(context.Context, firmbridge.Envelope, time.Time) ([]firmbridge.Row, error) {
	return nil, nil
}

func TestNewRegistry(t *testing.T) {
	if _, err := connectors.NewRegistry(fake{"tax.a"}, fake{"tax.a"}); err == nil || !strings.Contains(err.Error(), "tax.a") {
		t.Errorf("duplicate source: got %v, want an error naming tax.a", err)
	}
	if _, err := connectors.NewRegistry(fake{""}); err == nil {
		t.Error("empty source: got no error")
	}
	r, err := connectors.NewRegistry(fake{"tax.b"}, fake{"tax.a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Sources(); strings.Join(got, ",") != "tax.a,tax.b" {
		t.Errorf("Sources() = %v, want [tax.a tax.b]", got)
	}
	if _, ok := r.Lookup("tax.c"); ok {
		t.Error("Lookup(tax.c) found a connector")
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		" 福州某某科技(福建)有限公司 ": "福州某某科技（福建）有限公司",
		"ＡＢＣ  Tech  Ltd.":  "ABC Tech Ltd.",
	} {
		if got := connectors.CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
