package tax

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Canonical tables of the tax domain (schema/migrations/0002_tax.sql).
const (
	TableVATReturns    = "tax_vat_returns"
	TableCITAnnual     = "tax_cit_annual"
	TableCreditRatings = "tax_credit_ratings"
	TableArrears       = "tax_arrears"
)

// VATReturnRow is one VAT return (tax_vat_returns). Amounts are yuan.
// PeriodKind is "month" or "quarter". Late is true when the return was filed
// after the 15th of the month following the period. Flags name facts worth
// knowing about the record: see the Flag* constants.
type VATReturnRow struct {
	USCC         string
	TaxpayerName string
	PeriodStart  time.Time
	PeriodEnd    time.Time
	PeriodKind   string
	FiledOn      time.Time
	Late         bool
	Sales        decimal.Decimal
	OutputTax    decimal.Decimal
	InputTax     decimal.Decimal
	TaxPayable   decimal.Decimal
	Flags        []string
	Lineage      firmbridge.Lineage
}

var vatColumns = connectors.WithLineage("uscc", "taxpayer_name", "period_start", "period_end", "period_kind",
	"filed_on", "late", "sales", "output_tax", "input_tax", "tax_payable", "flags")

// Table implements firmbridge.Row.
func (VATReturnRow) Table() string { return TableVATReturns }

// Columns implements firmbridge.Row.
func (VATReturnRow) Columns() []string { return vatColumns }

// Values implements firmbridge.Row.
func (r VATReturnRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.TaxpayerName, r.PeriodStart, r.PeriodEnd, r.PeriodKind,
		r.FiledOn, b2u(r.Late), r.Sales, r.OutputTax, r.InputTax, r.TaxPayable, flags(r.Flags))
}

// CITAnnualRow is one annual corporate income tax filing (tax_cit_annual).
// Late is true when it was filed after May 31 of the following year.
type CITAnnualRow struct {
	USCC             string
	TaxYear          uint16
	OperatingRevenue decimal.Decimal
	TotalProfit      decimal.Decimal
	TaxPayable       decimal.Decimal
	FiledOn          time.Time
	Late             bool
	Flags            []string
	Lineage          firmbridge.Lineage
}

var citColumns = connectors.WithLineage("uscc", "tax_year", "operating_revenue", "total_profit", "tax_payable",
	"filed_on", "late", "flags")

// Table implements firmbridge.Row.
func (CITAnnualRow) Table() string { return TableCITAnnual }

// Columns implements firmbridge.Row.
func (CITAnnualRow) Columns() []string { return citColumns }

// Values implements firmbridge.Row.
func (r CITAnnualRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.TaxYear, r.OperatingRevenue, r.TotalProfit, r.TaxPayable,
		r.FiledOn, b2u(r.Late), flags(r.Flags))
}

// CreditRatingRow is a firm's tax credit rating for a year
// (tax_credit_ratings); Rating is A, B, M, C or D.
type CreditRatingRow struct {
	USCC       string
	RatingYear uint16
	Rating     string
	Lineage    firmbridge.Lineage
}

var ratingColumns = connectors.WithLineage("uscc", "rating_year", "rating")

// Table implements firmbridge.Row.
func (CreditRatingRow) Table() string { return TableCreditRatings }

// Columns implements firmbridge.Row.
func (CreditRatingRow) Columns() []string { return ratingColumns }

// Values implements firmbridge.Row.
func (r CreditRatingRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.RatingYear, r.Rating)
}

// ArrearsRow is outstanding tax of one type as of a date (tax_arrears).
// TaxType is a canonical code (vat, cit, ... or other); TaxTypeName is the
// provider's own name for it.
type ArrearsRow struct {
	USCC        string
	AsOf        time.Time
	TaxType     string
	TaxTypeName string
	AmountOwed  decimal.Decimal
	Lineage     firmbridge.Lineage
}

var arrearsColumns = connectors.WithLineage("uscc", "as_of", "tax_type", "tax_type_name", "amount_owed")

// Table implements firmbridge.Row.
func (ArrearsRow) Table() string { return TableArrears }

// Columns implements firmbridge.Row.
func (ArrearsRow) Columns() []string { return arrearsColumns }

// Values implements firmbridge.Row.
func (r ArrearsRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.AsOf, r.TaxType, r.TaxTypeName, r.AmountOwed)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func flags(f []string) []string {
	if f == nil {
		return []string{}
	}
	return f
}
