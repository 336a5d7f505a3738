package operations_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
)

// Electricity reported in 万千瓦时 is stored in kWh.
func ExampleElectricity() {
	payload, _ := json.Marshal(`059112345678,91350100m000100y43,2024年3月,12.3456,万千瓦时,350.5,`)
	env := firmbridge.Envelope{RecordID: "SGCC-059112345678-202403", Source: "ops.electricity", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 4, 3, 2, 0, 0, 0, time.UTC), Payload: payload,
		Header: "account_no,uscc,month,consumption,unit,peak_kw,arrears"}
	rows, err := operations.Electricity{}.Normalize(context.Background(), env, time.Date(2024, 4, 3, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(operations.ElectricityRow)
	fmt.Println(r.USCC, r.Month.Format("2006-01"), r.ConsumptionKWh.StringFixed(2), "kWh, arrears given:", r.Arrears != nil)
	// Output: 91350100M000100Y43 2024-03 123456.00 kWh, arrears given: false
}

// Social insurance with a Chinese quarter and a payroll base in 万元.
func ExampleSocialInsurance() {
	env := firmbridge.Envelope{RecordID: "SI-91350100M000100Y43-2024Q1", Source: "ops.social_insurance", SchemaVersion: 1,
		ObservedAt: time.Date(2024, 4, 15, 2, 0, 0, 0, time.UTC),
		Payload:    []byte(`{"uscc": "91350100M000100Y43", "period": "2024年第一季度", "insured_headcount": 86, "payroll_base_total": "98.6万元"}`)}
	rows, err := operations.SocialInsurance{}.Normalize(context.Background(), env, time.Date(2024, 4, 15, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(operations.SocialInsuranceRow)
	fmt.Println(r.PeriodKind, r.PeriodStart.Format("2006-01-02"), r.PeriodEnd.Format("2006-01-02"), r.InsuredHeadcount, r.PayrollBaseTotal.StringFixed(2))
	// Output: quarter 2024-01-01 2024-03-31 86 986000.00
}

// Monthly water consumption in cubic metres, with a thousands separator.
func ExampleWater() {
	env := firmbridge.Envelope{RecordID: "WATER-91350100M000100Y43-202403", Source: "ops.water", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 4, 10, 2, 0, 0, 0, time.UTC),
		Payload: []byte(`{"uscc": "91350100M000100Y43", "period": "2024-03", "volume_m3": "1,250"}`)}
	rows, err := operations.Water{}.Normalize(context.Background(), env, time.Date(2024, 4, 10, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(operations.WaterRow)
	fmt.Println(r.USCC, r.PeriodKind, r.PeriodStart.Format("2006-01-02"), r.PeriodEnd.Format("2006-01-02"), r.VolumeM3.String(), "m³")
	// Output: 91350100M000100Y43 month 2024-03-01 2024-03-31 1250 m³
}

// A month's exports in US dollars as customs exports them: one GB18030 CSV
// line with a Chinese header, base64-encoded in the envelope. The amount
// stays in dollars; no exchange rate is applied.
func ExampleCustoms() {
	line := `91350100M000100Y43,2024年3月,E,"1,234,567.89",USD`
	gb, _ := connectors.EncodeGB18030(line)
	payload, _ := json.Marshal(base64.StdEncoding.EncodeToString(gb))
	env := firmbridge.Envelope{RecordID: "CUS-91350100M000100Y43-202403-E-USD", Source: "ops.customs", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 4, 18, 2, 0, 0, 0, time.UTC),
		Header:  "企业统一社会信用代码,月份,进出口标志,金额,币制",
		Payload: payload, PayloadEncoding: "base64", Charset: "gb18030"}
	rows, err := operations.Customs{}.Normalize(context.Background(), env, time.Date(2024, 4, 18, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(operations.CustomsRow)
	fmt.Println(r.Table(), r.USCC, r.Month.Format("2006-01"), r.Direction, r.Amount.StringFixed(2), r.Currency)
	// Output: ops_customs 91350100M000100Y43 2024-03 export 1234567.89 USD
}
