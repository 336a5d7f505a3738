package tax_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

// A quarterly VAT return as the tax bureau exports it: one GB18030 CSV line,
// base64-encoded in the envelope, amounts in 万元.
func ExampleVATReturn() {
	line := `91350100m000100y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`
	gb, _ := connectors.EncodeGB18030(line)
	payload, _ := json.Marshal(base64.StdEncoding.EncodeToString(gb))
	env := firmbridge.Envelope{
		RecordID: "STA-VAT-91350100M000100Y43-2024Q1", Source: "tax.vat_return", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 4, 16, 9, 0, 0, 0, time.UTC),
		Header:  "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位",
		Payload: payload, PayloadEncoding: "base64", Charset: "gb18030",
	}
	rows, err := tax.VATReturn{}.Normalize(context.Background(), env, time.Date(2024, 4, 16, 9, 5, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rows {
		fmt.Println(r.Table())
	}
	v := rows[0].(tax.VATReturnRow)
	fmt.Println(v.USCC, v.PeriodKind, v.PeriodStart.Format("2006-01-02"), v.PeriodEnd.Format("2006-01-02"), "late:", v.Late)
	fmt.Println("sales", v.Sales.StringFixed(2), "payable", v.TaxPayable.StringFixed(2), v.Flags)
	// Output:
	// tax_vat_returns
	// firms
	// 91350100M000100Y43 quarter 2024-01-01 2024-03-31 late: false
	// sales 12345600.00 payable 722900.00 [unit_wan_yuan]
}

// An annual corporate income tax filing, amounts in yuan with thousands
// separators, filed before the May 31 deadline.
func ExampleCITAnnual() {
	env := firmbridge.Envelope{RecordID: "STA-CIT-91350100M000100Y43-2023", Source: "tax.cit_annual", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 5, 22, 2, 0, 0, 0, time.UTC),
		Payload: []byte(`{"taxpayer_id": "91350100M000100Y43", "tax_year": 2023, "operating_revenue": "52,310,000.00",
 "total_profit": "3,120,500.00", "tax_payable": "468,075.00", "currency": "CNY", "filed_on": "2024-05-20"}`)}
	rows, err := tax.CITAnnual{}.Normalize(context.Background(), env, time.Date(2024, 5, 22, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(tax.CITAnnualRow)
	fmt.Println(r.Table(), r.USCC, r.TaxYear, "filed", r.FiledOn.Format("2006-01-02"), "late:", r.Late)
	fmt.Println("revenue", r.OperatingRevenue.StringFixed(2), "profit", r.TotalProfit.StringFixed(2), "payable", r.TaxPayable.StringFixed(2))
	// Output:
	// tax_cit_annual 91350100M000100Y43 2023 filed 2024-05-20 late: false
	// revenue 52310000.00 profit 3120500.00 payable 468075.00
}

// A tax credit rating with the suffix 级 and a lower-case USCC.
func ExampleCreditRating() {
	env := firmbridge.Envelope{RecordID: "STA-NSXY-91350100M000100Y43-2023", Source: "tax.credit_rating", SchemaVersion: 1,
		ObservedAt: time.Date(2024, 4, 20, 2, 0, 0, 0, time.UTC),
		Payload:    []byte(`{"uscc": "91350100m000100y43", "year": "2023年", "rating": "A级"}`)}
	rows, err := tax.CreditRating{}.Normalize(context.Background(), env, time.Date(2024, 4, 20, 3, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	r := rows[0].(tax.CreditRatingRow)
	fmt.Println(r.USCC, r.RatingYear, r.Rating)
	// Output: 91350100M000100Y43 2023 A
}

// A rejected record says why, in which field.
func ExampleArrears_reject() {
	env := firmbridge.Envelope{RecordID: "STA-QS-1", Source: "tax.arrears", SchemaVersion: 1,
		ObservedAt: time.Date(2024, 7, 2, 2, 0, 0, 0, time.UTC),
		Payload:    []byte(`{"uscc": "91350100M000100Y43", "as_of": "2024/06/30", "tax_type": "增值税", "amount_owed": "十二万"}`)}
	_, err := tax.Arrears{}.Normalize(context.Background(), env, time.Date(2024, 7, 2, 3, 0, 0, 0, time.UTC))
	rej := err.(*firmbridge.Reject)
	fmt.Println(rej.Code, rej.Field)
	// Output: invalid_amount amount_owed
}
