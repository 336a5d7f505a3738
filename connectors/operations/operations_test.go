package operations_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
)

const (
	firmUSCC          = "91350100M000100Y43"
	headerElectricity = "account_no,uscc,month,consumption,unit,peak_kw,arrears"
	headerCustoms     = "企业统一社会信用代码,月份,进出口标志,金额,币制"
)

var (
	observed = time.Date(2024, 4, 20, 10, 0, 0, 0, connectors.ChinaTime)
	ingested = observed.Add(time.Minute)
)

func csvEnv(source, header, line string, gb bool) firmbridge.Envelope {
	env := firmbridge.Envelope{RecordID: "r-1", Source: source, SchemaVersion: 1, USCC: firmUSCC, ObservedAt: observed, Header: header}
	if gb {
		b, _ := connectors.EncodeGB18030(line)
		env.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(b))
		env.PayloadEncoding, env.Charset = "base64", "gb18030"
		return env
	}
	env.Payload, _ = json.Marshal(line)
	return env
}

func jsonEnv(source, payload string) firmbridge.Envelope {
	return firmbridge.Envelope{RecordID: "r-1", Source: source, SchemaVersion: 1, USCC: firmUSCC, ObservedAt: observed, Payload: []byte(payload)}
}

func dec(p *decimal.Decimal) string {
	if p == nil {
		return "nil"
	}
	return p.StringFixed(2)
}

func TestOperations_Normalize(t *testing.T) {
	tests := []struct {
		name  string
		env   firmbridge.Envelope
		want  string
		code  string
		field string
	}{
		{"electricity in kWh", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,2024-03,"112,266.92",kWh,374.2,0.00`, false),
			"059112345678 2024-03-01 112266.92 kWh peak 374.20 arrears 0.00", "", ""},
		{"electricity in 万千瓦时, Chinese month, empty extras", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,9135 0100 M000 100Y43,2024年3月,12.3456,万千瓦时,,`, false),
			"059112345678 2024-03-01 123456.00 kWh peak nil arrears nil", "", ""},
		{"electricity 202403 in 度", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,202403,5824.57,度,19.4,`, false),
			"059112345678 2024-03-01 5824.57 kWh peak 19.40 arrears nil", "", ""},
		{"electricity negative", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,2024-03,-1200,kWh,,`, false),
			"", firmbridge.RejectImplausible, "consumption"},
		{"electricity unknown unit", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,2024-03,1200,立方米,,`, false),
			"", firmbridge.RejectInvalidEnum, "unit"},
		{"electricity quarter", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,2024Q1,1200,kWh,,`, false),
			"", firmbridge.RejectInvalidPeriod, "month"},
		{"electricity future month", csvEnv(operations.SourceElectricity, headerElectricity, `059112345678,91350100M000100Y43,2024-05,1200,kWh,,`, false),
			"", firmbridge.RejectFuturePeriod, "month"},
		{"water provider sample", jsonEnv(operations.SourceWater, `{"uscc": "91350100M000100Y43", "period": "2024-03", "volume_m3": "1,250"}`),
			"2024-03-01..2024-03-31 month 1250.00 m3", "", ""},
		{"water in tonnes, quarterly", jsonEnv(operations.SourceWater, `{"uscc": "91350100M000100Y43", "period": "2024Q1", "volume_m3": "3,600吨"}`),
			"2024-01-01..2024-03-31 quarter 3600.00 m3", "", ""},
		{"water negative", jsonEnv(operations.SourceWater, `{"uscc": "91350100M000100Y43", "period": "2024-03", "volume_m3": "-35"}`),
			"", firmbridge.RejectImplausible, "volume_m3"},
		{"social insurance provider sample", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "91350100M000100Y43", "period": "2024年第一季度", "insured_headcount": 86, "payroll_base_total": "98.6万元"}`),
			"2024-01-01..2024-03-31 quarter 86 insured, payroll 986000.00", "", ""},
		{"social insurance monthly, headcount as text", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "91350100M000100Y43", "period": "2024年3月", "insured_headcount": "86人", "payroll_base_total": ""}`),
			"2024-03-01..2024-03-31 month 86 insured, payroll nil", "", ""},
		{"social insurance negative headcount", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "91350100M000100Y43", "period": "2024年第一季度", "insured_headcount": -5}`),
			"", firmbridge.RejectImplausible, "insured_headcount"},
		{"social insurance fractional headcount", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "91350100M000100Y43", "period": "2024年第一季度", "insured_headcount": 8.5}`),
			"", firmbridge.RejectInvalidAmount, "insured_headcount"},
		{"social insurance fifth quarter", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "91350100M000100Y43", "period": "2024年第五季度", "insured_headcount": 5}`),
			"", firmbridge.RejectInvalidPeriod, "period"},
		{"social insurance uscc mismatch", jsonEnv(operations.SourceSocialInsurance, `{"uscc": "911100001000000020", "period": "2024年第一季度", "insured_headcount": 5}`),
			"", firmbridge.RejectUSCCMismatch, "uscc"},
		{"customs export in USD", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,2024-03,E,"1,073,640.95",USD`, true),
			"2024-03-01 export 1073640.95 USD", "", ""},
		{"customs import, customs currency code", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,202403,I,"20,000.00",300`, true),
			"2024-03-01 import 20000.00 EUR", "", ""},
		{"customs import in 万元", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,202403,进口,336.6万,人民币`, true),
			"2024-03-01 import 3366000.00 CNY", "", ""},
		{"customs unknown currency", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,2024-03,E,1.00,XYZ`, true),
			"", firmbridge.RejectInvalidEnum, "币制"},
		{"customs bad flag", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,2024-03,X,1.00,USD`, true),
			"", firmbridge.RejectInvalidEnum, "进出口标志"},
		{"customs bad amount", csvEnv(operations.SourceCustoms, headerCustoms, `91350100M000100Y43,2024-03,E,"1,23,4.00",USD`, true),
			"", firmbridge.RejectInvalidAmount, "金额"},
	}
	conns := map[string]firmbridge.Connector{}
	for _, c := range operations.Connectors() {
		conns[c.Source()] = c
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := conns[tt.env.Source].Normalize(context.Background(), tt.env, ingested)
			if tt.code != "" {
				var rej *firmbridge.Reject
				if !errors.As(err, &rej) || rej.Code != tt.code || rej.Field != tt.field || rej.Message == "" {
					t.Fatalf("got %v, want reject %s on field %s", err, tt.code, tt.field)
				}
				return
			}
			if err != nil || len(rows) != 1 {
				t.Fatalf("got %d rows, %v; want 1 row", len(rows), err)
			}
			var got string
			switch r := rows[0].(type) {
			case operations.ElectricityRow:
				got = fmt.Sprintf("%s %s %s kWh peak %s arrears %s", r.AccountNo, r.Month.Format("2006-01-02"), r.ConsumptionKWh.StringFixed(2), dec(r.PeakKW), dec(r.Arrears))
			case operations.WaterRow:
				got = fmt.Sprintf("%s..%s %s %s m3", r.PeriodStart.Format("2006-01-02"), r.PeriodEnd.Format("2006-01-02"), r.PeriodKind, r.VolumeM3.StringFixed(2))
			case operations.SocialInsuranceRow:
				got = fmt.Sprintf("%s..%s %s %d insured, payroll %s", r.PeriodStart.Format("2006-01-02"), r.PeriodEnd.Format("2006-01-02"), r.PeriodKind, r.InsuredHeadcount, dec(r.PayrollBaseTotal))
			case operations.CustomsRow:
				got = fmt.Sprintf("%s %s %s %s", r.Month.Format("2006-01-02"), r.Direction, r.Amount.StringFixed(2), r.Currency)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
