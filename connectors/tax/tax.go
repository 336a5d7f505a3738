// Package tax normalizes the tax bureau's sources: VAT returns, annual
// corporate income tax filings, tax credit ratings and tax arrears.
package tax

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Sources of the tax domain.
const (
	SourceVATReturn    = "tax.vat_return"
	SourceCITAnnual    = "tax.cit_annual"
	SourceCreditRating = "tax.credit_rating"
	SourceArrears      = "tax.arrears"
)

// Connectors returns one connector per tax source.
func Connectors() []firmbridge.Connector {
	return []firmbridge.Connector{VATReturn{}, CITAnnual{}, CreditRating{}, Arrears{}}
}

var v1 = []firmbridge.SchemaVersion{1}

// Field names of tax.vat_return (the provider's Chinese header), each
// followed by the English names also accepted.
var (
	colTaxpayerID   = []string{"纳税人识别号", "统一社会信用代码", "uscc", "taxpayer_id"}
	colTaxpayerName = []string{"纳税人名称", "taxpayer_name", "name"}
	colPeriodStart  = []string{"所属期起", "税款所属期起", "period_start", "period"}
	colPeriodEnd    = []string{"所属期止", "税款所属期止", "period_end"}
	colFiledOn      = []string{"申报日期", "filed_on", "filing_date"}
	colSales        = []string{"销售额", "sales"}
	colOutputTax    = []string{"销项税额", "output_tax"}
	colInputTax     = []string{"进项税额", "input_tax"}
	colTaxPayable   = []string{"应纳税额", "tax_payable"}
	colUnit         = []string{"金额单位", "unit"}
)

// Field names of the JSON sources, the provider's own name first.
var (
	colUSCC = []string{"uscc", "taxpayer_id", "纳税人识别号"}

	citTaxpayerID = []string{"taxpayer_id", "uscc", "纳税人识别号"}
	citTaxYear    = []string{"tax_year", "year", "所属年度"}
	citRevenue    = []string{"operating_revenue", "营业收入"}
	citProfit     = []string{"total_profit", "利润总额"}
	citTaxPayable = []string{"tax_payable", "应纳税额"}
	citFiledOn    = []string{"filed_on", "申报日期"}

	ratingYear   = []string{"year", "rating_year", "评价年度"}
	ratingRating = []string{"rating", "纳税信用等级", "信用等级"}

	arrearsAsOf    = []string{"as_of", "截至日期"}
	arrearsTaxType = []string{"tax_type", "税种"}
	arrearsOwed    = []string{"amount_owed", "欠税金额"}
)

// RequiredColumns implements connectors.ColumnSource. 所属期止 is not
// required: 所属期起 alone may hold the period.
func (VATReturn) RequiredColumns() [][]string {
	return [][]string{colTaxpayerID, colTaxpayerName, colPeriodStart, colFiledOn, colSales, colOutputTax,
		colInputTax, colTaxPayable, colUnit}
}

// RequiredColumns implements connectors.ColumnSource.
func (CITAnnual) RequiredColumns() [][]string {
	return [][]string{citTaxpayerID, citTaxYear, citRevenue, citProfit, citTaxPayable, citFiledOn}
}

// RequiredColumns implements connectors.ColumnSource.
func (CreditRating) RequiredColumns() [][]string {
	return [][]string{colUSCC, ratingYear, ratingRating}
}

// RequiredColumns implements connectors.ColumnSource.
func (Arrears) RequiredColumns() [][]string {
	return [][]string{colUSCC, arrearsAsOf, arrearsTaxType, arrearsOwed}
}

// Flags a VAT return row may carry.
const (
	FlagLate              = "late"                // filed after the 15th of the month following the period
	FlagZeroReturn        = "zero_return"         // 零申报: no sales, no output and no input tax
	FlagExcessInputCredit = "excess_input_credit" // input tax exceeds output tax: the excess is carried forward (留抵)
	FlagUnitWanYuan       = "unit_wan_yuan"       // amounts were sent in 万元 (rounded to 100 yuan)
	FlagUnitOther         = "unit_scaled"         // amounts were sent in a unit other than 元 or 万元
	FlagLoss              = "loss"                // CIT: total profit is negative
)

// maxVATRate bounds output tax as a share of sales: the highest standard VAT
// rate since 2012 was 17% (13% since April 2019).
var maxVATRate = decimal.RequireFromString("0.17")

// VATReturn normalizes tax.vat_return: one CSV line (GB18030, Chinese
// header) per monthly or quarterly VAT return.
//
// The period is 所属期起..所属期止 and must be a calendar month or quarter
// (所属期起 alone may also hold a period such as 2024-03 or 2024Q1).
// Amounts are in 金额单位, 元 or 万元 (required). Rules, in order:
//
//   - the period may not start after the day the record was observed
//     (RejectFuturePeriod), the return may not be filed on or before the
//     period's last day (RejectInconsistentData on 申报日期) nor after it
//     was observed (RejectFuturePeriod);
//   - amounts may not be negative (RejectImplausible);
//   - output tax may not exceed 17% of sales plus the tolerance
//     (RejectInconsistentData on 销项税额);
//   - tax payable must equal output tax − input tax within the tolerance,
//     or 0 within the tolerance when input tax exceeds output tax (the excess
//     is carried forward), else RejectInconsistentData on 应纳税额. The
//     tolerance is max(1 yuan, 1% of |output − input|) plus 1.5 hundredths
//     of the unit, the most the rounding of three figures to 0.01 of the
//     unit can explain (150 yuan when amounts are in 万元). Reductions and
//     credits carried in from earlier periods are not part of this format,
//     so a return that applied them is rejected for review.
//
// The row is late when filed after the 15th of the month following the
// period's end (statutory holiday extensions are not modelled).
type VATReturn struct{}

// Source implements firmbridge.Connector.
func (VATReturn) Source() string { return SourceVATReturn }

// SchemaVersions implements firmbridge.Connector.
func (VATReturn) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c VATReturn) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (VATReturn) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(colTaxpayerID...)
	name := r.Name(colTaxpayerName...)
	period := vatPeriod(r)
	filed := r.Date(colFiledOn...)
	unit := r.RequiredText(colUnit...)
	factor, uerr := connectors.ParseUnit(unit)
	if uerr != nil && !r.Failed() {
		r.Fail(firmbridge.RejectInvalidEnum, colUnit[0], "%s %q is not a money unit (want 元 or 万元)", colUnit[0], unit)
	}
	sales := r.Yuan(unit, colSales...)
	out := r.Yuan(unit, colOutputTax...)
	in := r.Yuan(unit, colInputTax...)
	pay := r.Yuan(unit, colTaxPayable...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}

	r.NotFuture(colPeriodStart[0], period.Start, env.ObservedAt)
	if !r.Failed() && !filed.After(period.End) {
		r.Fail(firmbridge.RejectInconsistentData, colFiledOn[0], "%s %s is not after the end of the period %s",
			colFiledOn[0], filed.Format("2006-01-02"), period)
	}
	r.NotFuture(colFiledOn[0], filed, env.ObservedAt)
	r.NotNegative(colSales[0], sales)
	r.NotNegative(colOutputTax[0], out)
	r.NotNegative(colInputTax[0], in)
	r.NotNegative(colTaxPayable[0], pay)
	if !r.Failed() {
		switch tooMuchOutput, payMismatch := vatChecks(sales, out, in, pay, factor); {
		case tooMuchOutput:
			r.Fail(firmbridge.RejectInconsistentData, colOutputTax[0], "%s %s is more than 17%% of %s %s",
				colOutputTax[0], out.StringFixed(2), colSales[0], sales.StringFixed(2))
		case payMismatch:
			net := out.Sub(in)
			want := decimal.Max(net, decimal.Zero)
			r.Fail(firmbridge.RejectInconsistentData, colTaxPayable[0],
				"%s %s does not match %s − %s = %s (tolerance %s yuan)",
				colTaxPayable[0], pay.StringFixed(2), colOutputTax[0], colInputTax[0], want.StringFixed(2),
				vatTolerance(net, factor).StringFixed(2))
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}

	deadline := connectors.Date(period.End.Year(), period.End.Month()+1, 15)
	late := filed.After(deadline)
	var fl []string
	if late {
		fl = append(fl, FlagLate)
	}
	if sales.IsZero() && out.IsZero() && in.IsZero() {
		fl = append(fl, FlagZeroReturn)
	}
	if out.LessThan(in) { // net is negative
		fl = append(fl, FlagExcessInputCredit)
	}
	switch {
	case factor.Equal(wanYuan):
		fl = append(fl, FlagUnitWanYuan)
	case !factor.Equal(oneYuan):
		fl = append(fl, FlagUnitOther)
	}
	return connectors.Rows(
		VATReturnRow{
			USCC: uscc, TaxpayerName: name,
			PeriodStart: period.Start, PeriodEnd: period.End, PeriodKind: period.Kind.String(),
			FiledOn: filed, Late: late,
			Sales: sales, OutputTax: out, InputTax: in, TaxPayable: pay,
			Flags: fl, Lineage: l,
		},
		connectors.Firm(uscc, name, l),
	), nil
}

var (
	oneYuan, wanYuan = decimal.NewFromInt(1), decimal.NewFromInt(10_000)
	vatTolFen        = decimal.RequireFromString("0.015")
	hundred          = decimal.NewFromInt(100)
	monthOrQuarter   = []connectors.PeriodKind{connectors.PeriodMonth, connectors.PeriodQuarter}
)

// vatTolerance is the tolerance of the VAT return checks for net output
// tax net and money unit factor: max(1, |net|/100) + factor×0.015.
func vatTolerance(net, factor decimal.Decimal) decimal.Decimal {
	return decimal.Max(oneYuan, net.Abs().Div(hundred)).Add(factor.Mul(vatTolFen))
}

// vatChecks reports whether output tax exceeds 17% of sales plus the
// tolerance, and whether tax payable is not output − input tax (or 0 when
// input exceeds output) within the tolerance. Amounts at the fen scale
// that are below 10^13 yuan are checked in int64 units of 0.0001 yuan,
// where every term is exact; others with decimals (vatChecksRef).
// FuzzVATChecks checks that both agree.
func vatChecks(sales, out, in, pay, factor decimal.Decimal) (tooMuchOutput, payMismatch bool) {
	s, ok1 := fen(sales)
	o, ok2 := fen(out)
	i, ok3 := fen(in)
	p, ok4 := fen(pay)
	k, ok5 := smallWhole(factor)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return vatChecksRef(sales, out, in, pay, factor)
	}
	// In units of 0.0001 yuan: an amount of f fen is 100f; 17% of s fen
	// is 17s; |net|/100 is |net fen|; 1 yuan is 10,000; 0.015 is 150.
	net := o - i
	tol := max(10_000, abs(net)) + 150*k
	want := max(net, 0)
	return 100*o > 17*s+tol, 100*abs(p-want) > tol
}

// vatChecksRef is vatChecks in decimal arithmetic, for any amounts.
func vatChecksRef(sales, out, in, pay, factor decimal.Decimal) (tooMuchOutput, payMismatch bool) {
	net := out.Sub(in)
	tol := vatTolerance(net, factor)
	want := decimal.Max(net, decimal.Zero)
	return out.GreaterThan(sales.Mul(maxVATRate).Add(tol)), pay.Sub(want).Abs().GreaterThan(tol)
}

// fen returns an amount at the fen scale (exponent -2, as connectors'
// amounts are) in fen, when it is below 10^13 yuan.
func fen(d decimal.Decimal) (int64, bool) {
	if d.Exponent() != -2 || d.NumDigits() > 15 {
		return 0, false
	}
	return d.CoefficientInt64(), true
}

// smallWhole returns a whole number from 0 to 10^9 as an int64.
func smallWhole(d decimal.Decimal) (int64, bool) {
	if d.Exponent() != 0 || d.Sign() < 0 || d.NumDigits() > 9 {
		return 0, false
	}
	return d.CoefficientInt64(), true
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func vatPeriod(r *connectors.Reader) connectors.Period {
	kinds := monthOrQuarter
	if r.Text(colPeriodEnd...) == "" {
		return r.Period(kinds, colPeriodStart...)
	}
	start := r.Date(colPeriodStart...)
	end := r.Date(colPeriodEnd...)
	if r.Failed() {
		return connectors.Period{}
	}
	p, err := connectors.PeriodFromDates(start, end)
	if err != nil || p.Kind == connectors.PeriodYear {
		r.Fail(firmbridge.RejectInvalidPeriod, colPeriodEnd[0], "%s to %s is not a calendar month or quarter",
			start.Format("2006-01-02"), end.Format("2006-01-02"))
	}
	return p
}

// CITAnnual normalizes tax.cit_annual: one JSON object per annual corporate
// income tax filing (企业所得税年度汇算清缴). Amounts are yuan (currency
// must be CNY or absent); total profit may be negative (flag loss), revenue
// and tax payable may not. The filing must come after the tax year and not
// after it was observed; it is late after May 31 of the following year.
type CITAnnual struct{}

// Source implements firmbridge.Connector.
func (CITAnnual) Source() string { return SourceCITAnnual }

// SchemaVersions implements firmbridge.Connector.
func (CITAnnual) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c CITAnnual) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (CITAnnual) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(citTaxpayerID...)
	year := r.Year(citTaxYear...)
	revenue := r.Yuan("", citRevenue...)
	profit := r.Yuan("", citProfit...)
	pay := r.Yuan("", citTaxPayable...)
	filed := r.Date(citFiledOn...)
	if cur := r.Text("currency", "币种"); cur != "" && !r.Failed() {
		if code, err := connectors.NormalizeCurrency(cur); err != nil || code != "CNY" {
			r.Fail(firmbridge.RejectInvalidEnum, "currency", "currency %q: corporate income tax is filed in CNY", cur)
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	yp := connectors.YearPeriod(year)
	r.NotFuture("tax_year", yp.Start, env.ObservedAt)
	if !r.Failed() && !filed.After(yp.End) {
		r.Fail(firmbridge.RejectInconsistentData, "filed_on", "filed_on %s is not after the tax year %d", filed.Format("2006-01-02"), year)
	}
	r.NotFuture("filed_on", filed, env.ObservedAt)
	r.NotNegative("operating_revenue", revenue)
	r.NotNegative("tax_payable", pay)
	if err := r.Err(); err != nil {
		return nil, err
	}
	late := filed.After(connectors.Date(year+1, time.May, 31))
	var fl []string
	if late {
		fl = append(fl, FlagLate)
	}
	if profit.IsNegative() {
		fl = append(fl, FlagLoss)
	}
	return []firmbridge.Row{CITAnnualRow{
		USCC: uscc, TaxYear: uint16(year), OperatingRevenue: revenue, TotalProfit: profit, TaxPayable: pay,
		FiledOn: filed, Late: late, Flags: fl, Lineage: l,
	}}, nil
}

// Ratings is the tax credit rating scale (纳税信用等级).
var Ratings = connectors.NewEnum("tax credit rating", map[string][]string{
	"A": {"A级"}, "B": {"B级"}, "M": {"M级"}, "C": {"C级"}, "D": {"D级"},
})

// CreditRating normalizes tax.credit_rating: one JSON object per firm and
// year; the rating is A, B, M, C or D, possibly with the suffix 级. A year
// after the one the record was observed in is a RejectFuturePeriod.
type CreditRating struct{}

// Source implements firmbridge.Connector.
func (CreditRating) Source() string { return SourceCreditRating }

// SchemaVersions implements firmbridge.Connector.
func (CreditRating) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c CreditRating) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (CreditRating) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(colUSCC...)
	year := r.Year(ratingYear...)
	rating := r.Enum(Ratings, ratingRating...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("year", connectors.YearPeriod(year).Start, env.ObservedAt)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return []firmbridge.Row{CreditRatingRow{USCC: uscc, RatingYear: uint16(year), Rating: rating, Lineage: l}}, nil
}

// TaxTypes maps tax names to canonical codes. A tax type outside this list
// is kept as "other" with its name, not rejected: the list of taxes and
// surcharges is long and an unlisted one is still a debt.
var TaxTypes = connectors.NewEnum("tax type", map[string][]string{
	"vat":                       {"增值税", "VAT"},
	"cit":                       {"企业所得税", "CIT"},
	"iit":                       {"个人所得税", "IIT"},
	"consumption":               {"消费税"},
	"urban_maintenance":         {"城市维护建设税", "城建税"},
	"education_surcharge":       {"教育费附加"},
	"local_education_surcharge": {"地方教育附加"},
	"stamp":                     {"印花税"},
	"property":                  {"房产税"},
	"land_use":                  {"城镇土地使用税", "土地使用税"},
	"land_appreciation":         {"土地增值税"},
	"resource":                  {"资源税"},
	"vehicle_vessel":            {"车船税"},
	"environmental_protection":  {"环境保护税", "环保税"},
	"deed":                      {"契税"},
	"farmland_occupation":       {"耕地占用税"},
	"social_insurance":          {"社会保险费", "社保费"},
})

// TaxTypeOther is the tax type of a tax name not in TaxTypes.
const TaxTypeOther = "other"

// Arrears normalizes tax.arrears: one JSON object per firm, date and tax
// type with the amount owed (yuan, 万/万元 suffixes allowed). The amount may
// be zero (settled) but not negative; as_of may not lie after the day the
// record was observed.
type Arrears struct{}

// Source implements firmbridge.Connector.
func (Arrears) Source() string { return SourceArrears }

// SchemaVersions implements firmbridge.Connector.
func (Arrears) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c Arrears) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (Arrears) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(colUSCC...)
	asOf := r.Date(arrearsAsOf...)
	typeName := r.RequiredText(arrearsTaxType...)
	owed := r.Yuan("", arrearsOwed...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("as_of", asOf, env.ObservedAt)
	r.NotNegative("amount_owed", owed)
	if err := r.Err(); err != nil {
		return nil, err
	}
	code, err := TaxTypes.Parse(typeName)
	if err != nil {
		code = TaxTypeOther
	}
	return []firmbridge.Row{ArrearsRow{
		USCC: uscc, AsOf: asOf, TaxType: code, TaxTypeName: connectors.CleanName(typeName), AmountOwed: owed, Lineage: l,
	}}, nil
}
