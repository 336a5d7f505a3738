package operations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
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
