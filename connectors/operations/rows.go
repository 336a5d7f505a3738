package operations

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Canonical tables of the operations domain (schema/migrations/0004_operations.sql).
const (
	TableElectricity     = "ops_electricity"
	TableWater           = "ops_water"
	TableSocialInsurance = "ops_social_insurance"
	TableCustoms         = "ops_customs"
)

// ElectricityRow is one month of a grid account's consumption
// (ops_electricity), in kWh. PeakKW and Arrears (yuan) are nil when the
// grid company left them empty.
type ElectricityRow struct {
	USCC           string
	AccountNo      string
	Month          time.Time // first day of the month
	ConsumptionKWh decimal.Decimal
	PeakKW         *decimal.Decimal
	Arrears        *decimal.Decimal
	Lineage        firmbridge.Lineage
}

var electricityColumns = connectors.WithLineage("uscc", "account_no", "month", "consumption_kwh", "peak_kw", "arrears")

// Table implements firmbridge.Row.
func (ElectricityRow) Table() string { return TableElectricity }

// Columns implements firmbridge.Row.
func (ElectricityRow) Columns() []string { return electricityColumns }

// Values implements firmbridge.Row.
func (r ElectricityRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.AccountNo, r.Month, r.ConsumptionKWh, r.PeakKW, r.Arrears)
}

// WaterRow is the water consumed in a period (ops_water), in cubic metres.
type WaterRow struct {
	USCC        string
	PeriodStart time.Time
	PeriodEnd   time.Time
	PeriodKind  string // month or quarter
	VolumeM3    decimal.Decimal
	Lineage     firmbridge.Lineage
}

var waterColumns = connectors.WithLineage("uscc", "period_start", "period_end", "period_kind", "volume_m3")

// Table implements firmbridge.Row.
func (WaterRow) Table() string { return TableWater }

// Columns implements firmbridge.Row.
func (WaterRow) Columns() []string { return waterColumns }

// Values implements firmbridge.Row.
func (r WaterRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.PeriodStart, r.PeriodEnd, r.PeriodKind, r.VolumeM3)
}

// SocialInsuranceRow is the insured headcount of a period
// (ops_social_insurance); PayrollBaseTotal (yuan) is nil when not given.
type SocialInsuranceRow struct {
	USCC             string
	PeriodStart      time.Time
	PeriodEnd        time.Time
	PeriodKind       string // month or quarter
	InsuredHeadcount uint32
	PayrollBaseTotal *decimal.Decimal
	Lineage          firmbridge.Lineage
}

var socialColumns = connectors.WithLineage("uscc", "period_start", "period_end", "period_kind",
	"insured_headcount", "payroll_base_total")

// Table implements firmbridge.Row.
func (SocialInsuranceRow) Table() string { return TableSocialInsurance }

// Columns implements firmbridge.Row.
func (SocialInsuranceRow) Columns() []string { return socialColumns }

// Values implements firmbridge.Row.
func (r SocialInsuranceRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.PeriodStart, r.PeriodEnd, r.PeriodKind,
		r.InsuredHeadcount, r.PayrollBaseTotal)
}

// CustomsRow is a month's imports or exports of a firm in one currency
// (ops_customs). Amount is in Currency; no exchange rate is applied.
type CustomsRow struct {
	USCC      string
	Month     time.Time // first day of the month
	Direction string    // import or export
	Amount    decimal.Decimal
	Currency  string // ISO 4217
	Lineage   firmbridge.Lineage
}

var customsColumns = connectors.WithLineage("uscc", "month", "direction", "amount", "currency")

// Table implements firmbridge.Row.
func (CustomsRow) Table() string { return TableCustoms }

// Columns implements firmbridge.Row.
func (CustomsRow) Columns() []string { return customsColumns }

// Values implements firmbridge.Row.
func (r CustomsRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.Month, r.Direction, r.Amount, r.Currency)
}
