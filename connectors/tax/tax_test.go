package tax_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

const header = "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"

var (
	observed = time.Date(2024, 4, 18, 10, 0, 0, 0, connectors.ChinaTime)
	ingested = observed.Add(time.Hour)
)

// vatEnvelope wraps a CSV line the way the tax bureau sends it: GB18030, base64.
func vatEnvelope(t testing.TB, line string) firmbridge.Envelope {
	t.Helper()
	gb, err := connectors.EncodeGB18030(line)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(base64.StdEncoding.EncodeToString(gb))
	return firmbridge.Envelope{RecordID: "STA-VAT-91350100M000100Y43-2024Q1", Source: tax.SourceVATReturn, SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: observed, Payload: p, Header: header, PayloadEncoding: "base64", Charset: "gb18030"}
}

func TestVATReturn_Normalize(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    string // sales/output/input/payable kind start end filed late
		flags   string
		wantErr string // reject code
		field   string
	}{
		{"provider sample, quarter in 万元",
			`91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`,
			"12345600.00/1604900.00/882000.00/722900.00 quarter 2024-01-01..2024-03-31 filed 2024-04-15 late=false", "unit_wan_yuan", "", ""},
		{"month in 元, filed late, lower-case USCC",
			`91350100m000100y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024/04/16,"152,000.00","19,760.00","12,000.00","7,760.00",元`,
			"152000.00/19760.00/12000.00/7760.00 month 2024-03-01..2024-03-31 filed 2024-04-16 late=true", "late", "", ""},
		{"excess input credit, Excel serial filing date",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,45392,"100,000.00","13,000.00","15,000.00",0.00,元`,
			"100000.00/13000.00/15000.00/0.00 month 2024-03-01..2024-03-31 filed 2024-04-10 late=false", "excess_input_credit", "", ""},
		{"zero return with period in 所属期起 only",
			`91350100M000100Y43,福州某某科技有限公司,2024年第一季度,,2024-04-12,0,0,0,0,元`,
			"0.00/0.00/0.00/0.00 quarter 2024-01-01..2024-03-31 filed 2024-04-12 late=false", "zero_return", "", ""},
		{"payable inconsistent",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,"152,000.00","19,760.00","12,000.00","9,760.00",元`,
			"", "", firmbridge.RejectInconsistentData, "应纳税额"},
		{"output tax above 17% of sales",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,"10,000.00","5,000.00",0,"5,000.00",元`,
			"", "", firmbridge.RejectInconsistentData, "销项税额"},
		{"not a month or quarter",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-04-30,2024-05-10,1,0.13,0,0.13,元`,
			"", "", firmbridge.RejectInvalidPeriod, "所属期止"},
		{"future period",
			`91350100M000100Y43,福州某某科技有限公司,2024-05-01,2024-05-31,2024-04-10,1,0.13,0,0.13,元`,
			"", "", firmbridge.RejectFuturePeriod, "所属期起"},
		{"filed before the period ended",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-03-20,1,0.13,0,0.13,元`,
			"", "", firmbridge.RejectInconsistentData, "申报日期"},
		{"unknown unit",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,1,0.13,0,0.13,千克`,
			"", "", firmbridge.RejectInvalidEnum, "金额单位"},
		{"missing unit",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,1,0.13,0,0.13,`,
			"", "", firmbridge.RejectMissingField, "金额单位"},
		{"bad amount",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,12..5,0.13,0,0.13,元`,
			"", "", firmbridge.RejectInvalidAmount, "销售额"},
		{"negative input tax",
			`91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,1,0.13,-1,1.13,元`,
			"", "", firmbridge.RejectImplausible, "进项税额"},
		{"bad USCC",
			`91350100M000100Y44,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,1,0.13,0,0.13,元`,
			"", "", firmbridge.RejectInvalidUSCC, "纳税人识别号"},
		{"missing name",
			`91350100M000100Y43,,2024-03-01,2024-03-31,2024-04-10,1,0.13,0,0.13,元`,
			"", "", firmbridge.RejectMissingField, "纳税人名称"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := tax.VATReturn{}.Normalize(context.Background(), vatEnvelope(t, tt.line), ingested)
			if tt.wantErr != "" {
				var rej *firmbridge.Reject
				if !errors.As(err, &rej) || rej.Code != tt.wantErr || rej.Field != tt.field || rej.Message == "" {
					t.Fatalf("got %v, want reject %s on field %s with a message", err, tt.wantErr, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			if len(rows) != 2 {
				t.Fatalf("got %d rows, want a VAT row and a firms row", len(rows))
			}
			r := rows[0].(tax.VATReturnRow)
			got := fmt.Sprintf("%s/%s/%s/%s %s %s..%s filed %s late=%v", r.Sales.StringFixed(2), r.OutputTax.StringFixed(2),
				r.InputTax.StringFixed(2), r.TaxPayable.StringFixed(2), r.PeriodKind, r.PeriodStart.Format("2006-01-02"),
				r.PeriodEnd.Format("2006-01-02"), r.FiledOn.Format("2006-01-02"), r.Late)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if f := strings.Join(r.Flags, ","); f != tt.flags {
				t.Errorf("flags = %q, want %q", f, tt.flags)
			}
			if r.USCC != "91350100M000100Y43" || r.TaxpayerName != "福州某某科技有限公司" {
				t.Errorf("firm = %s %s", r.USCC, r.TaxpayerName)
			}
			firm := rows[1].(connectors.FirmRow)
			if firm.USCC != r.USCC || firm.Name != r.TaxpayerName || firm.Lineage != r.Lineage {
				t.Errorf("firms row = %+v, want the taxpayer with the same lineage", firm)
			}
			if r.Lineage.Version != firmbridge.VersionOf(observed) || r.Lineage.Source != tax.SourceVATReturn {
				t.Errorf("lineage = %+v", r.Lineage)
			}
		})
	}
}

func TestVATReturn_USCCMismatch(t *testing.T) {
	env := vatEnvelope(t, `91350100M000100Y43,福州某某科技有限公司,2024-03-01,2024-03-31,2024-04-10,1,0.13,0,0.13,元`)
	env.USCC = "91110000100000002" + "0"
	_, err := tax.VATReturn{}.Normalize(context.Background(), env, ingested)
	var rej *firmbridge.Reject
	if !errors.As(err, &rej) || rej.Code != firmbridge.RejectUSCCMismatch || rej.Field != "uscc" {
		t.Errorf("got %v, want %s on uscc", err, firmbridge.RejectUSCCMismatch)
	}
}

func jsonEnv(source, payload string) firmbridge.Envelope {
	return firmbridge.Envelope{RecordID: "r-1", Source: source, SchemaVersion: 1, ObservedAt: observed, Payload: []byte(payload)}
}

func TestJSONSources_Normalize(t *testing.T) {
	tests := []struct {
		name    string
		env     firmbridge.Envelope
		want    string
		wantErr string
		field   string
	}{
		{"CIT provider sample", jsonEnv(tax.SourceCITAnnual, `{"taxpayer_id": "91350100M000100Y43", "tax_year": 2023, "operating_revenue": "52,310,000.00",
 "total_profit": "3,120,500.00", "tax_payable": "468,075.00", "currency": "CNY", "filed_on": "2024-04-10"}`),
			"{USCC:91350100M000100Y43 TaxYear:2023 OperatingRevenue:52310000 TotalProfit:3120500 TaxPayable:468075 FiledOn:2024-04-10 Late:false Flags:[]}", "", ""},
		{"CIT loss, filed late in a later year", jsonEnv(tax.SourceCITAnnual, `{"taxpayer_id": "91350100M000100Y43", "tax_year": "2022年", "operating_revenue": "1,000.00",
 "total_profit": "-500.00", "tax_payable": "0", "filed_on": "2023-06-20"}`),
			"{USCC:91350100M000100Y43 TaxYear:2022 OperatingRevenue:1000 TotalProfit:-500 TaxPayable:0 FiledOn:2023-06-20 Late:true Flags:[late loss]}", "", ""},
		{"CIT in USD", jsonEnv(tax.SourceCITAnnual, `{"taxpayer_id": "91350100M000100Y43", "tax_year": 2023, "operating_revenue": "1",
 "total_profit": "1", "tax_payable": "0", "currency": "USD", "filed_on": "2024-04-10"}`), "", firmbridge.RejectInvalidEnum, "currency"},
		{"CIT future year", jsonEnv(tax.SourceCITAnnual, `{"taxpayer_id": "91350100M000100Y43", "tax_year": 2025, "operating_revenue": "1",
 "total_profit": "1", "tax_payable": "0", "filed_on": "2024-04-10"}`), "", firmbridge.RejectFuturePeriod, "tax_year"},
		{"rating provider sample", jsonEnv(tax.SourceCreditRating, `{"uscc": "91350100m000100y43", "year": "2023年", "rating": "A级"}`),
			"{USCC:91350100M000100Y43 RatingYear:2023 Rating:A}", "", ""},
		{"rating full-width", jsonEnv(tax.SourceCreditRating, `{"uscc": "91350100M000100Y43", "year": 2023, "rating": " Ｍ "}`),
			"{USCC:91350100M000100Y43 RatingYear:2023 Rating:M}", "", ""},
		{"rating unknown", jsonEnv(tax.SourceCreditRating, `{"uscc": "91350100M000100Y43", "year": 2023, "rating": "AA"}`),
			"", firmbridge.RejectInvalidEnum, "rating"},
		{"rating missing", jsonEnv(tax.SourceCreditRating, `{"uscc": "91350100M000100Y43", "year": 2023, "rating": ""}`),
			"", firmbridge.RejectMissingField, "rating"},
		{"arrears provider sample", jsonEnv(tax.SourceArrears, `{"uscc": "91350100M000100Y43", "as_of": "2024/03/31", "tax_type": "增值税", "amount_owed": "12.5万"}`),
			"{USCC:91350100M000100Y43 AsOf:2024-03-31 TaxType:vat TaxTypeName:增值税 AmountOwed:125000}", "", ""},
		{"arrears unlisted tax type", jsonEnv(tax.SourceArrears, `{"uscc": "91350100M000100Y43", "as_of": "2024/03/31", "tax_type": "水利建设基金", "amount_owed": "8,560.00"}`),
			"{USCC:91350100M000100Y43 AsOf:2024-03-31 TaxType:other TaxTypeName:水利建设基金 AmountOwed:8560}", "", ""},
		{"arrears missing amount", jsonEnv(tax.SourceArrears, `{"uscc": "91350100M000100Y43", "as_of": "2024/03/31", "tax_type": "增值税", "amount_owed": ""}`),
			"", firmbridge.RejectMissingField, "amount_owed"},
		{"arrears as of a future date", jsonEnv(tax.SourceArrears, `{"uscc": "91350100M000100Y43", "as_of": "2024/06/30", "tax_type": "增值税", "amount_owed": "1"}`),
			"", firmbridge.RejectFuturePeriod, "as_of"},
	}
	conns := map[string]firmbridge.Connector{}
	for _, c := range tax.Connectors() {
		conns[c.Source()] = c
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := conns[tt.env.Source].Normalize(context.Background(), tt.env, ingested)
			if tt.wantErr != "" {
				var rej *firmbridge.Reject
				if !errors.As(err, &rej) || rej.Code != tt.wantErr || rej.Field != tt.field {
					t.Fatalf("got %v, want reject %s on field %s", err, tt.wantErr, tt.field)
				}
				return
			}
			if err != nil || len(rows) != 1 {
				t.Fatalf("got %d rows, %v; want 1 row", len(rows), err)
			}
			if got := describe(rows[0]); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// describe prints a row's own fields (dates as days, without lineage).
func describe(r firmbridge.Row) string {
	s := fmt.Sprintf("%+v", r)
	s = s[:strings.Index(s, " Lineage:")] + "}"
	for _, v := range r.Values() {
		if t, ok := v.(time.Time); ok {
			s = strings.ReplaceAll(s, t.String(), t.Format("2006-01-02"))
		}
	}
	return s
}
