// Package operations normalizes the utilities' and agencies' sources:
// electricity, water, social insurance headcount and customs declarations.
package operations

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Sources of the operations domain.
const (
	SourceElectricity     = "ops.electricity"
	SourceWater           = "ops.water"
	SourceSocialInsurance = "ops.social_insurance"
	SourceCustoms         = "ops.customs"
)

// Connectors returns one connector per operations source.
func Connectors() []firmbridge.Connector {
	return []firmbridge.Connector{Electricity{}, Water{}, SocialInsurance{}, Customs{}}
}

var v1 = []firmbridge.SchemaVersion{1}

var (
	monthOnly       = []connectors.PeriodKind{connectors.PeriodMonth}
	monthOrQuarter  = []connectors.PeriodKind{connectors.PeriodMonth, connectors.PeriodQuarter}
	kwhPerUnit      = map[string]decimal.Decimal{}
	electricityUnit = connectors.NewEnum("electricity unit", map[string][]string{
		"kWh":  {"千瓦时", "度", "kW·h", "kwh", "kw.h"},
		"万千瓦时": {"万kWh", "万度", "10^4kWh"},
		"MWh":  {"兆瓦时", "千千瓦时"},
		"亿千瓦时": {"亿kWh"},
	})
)

// Field names of each source, the provider's own name first.
var (
	colUSCC = []string{"uscc", "统一社会信用代码"}

	elAccount     = []string{"account_no", "户号"}
	elMonth       = []string{"month", "月份"}
	elConsumption = []string{"consumption", "用电量"}
	elUnit        = []string{"unit", "单位"}
	elPeak        = []string{"peak_kw", "最大需量"}
	elArrears     = []string{"arrears", "欠费金额"}

	waterPeriod = []string{"period", "month", "月份"}
	waterVolume = []string{"volume_m3", "volume", "用水量"}

	siPeriod    = []string{"period", "所属期"}
	siHeadcount = []string{"insured_headcount", "参保人数"}
	siPayroll   = []string{"payroll_base_total", "缴费基数合计"}

	cusUSCC      = []string{"企业统一社会信用代码", "统一社会信用代码", "uscc"}
	cusMonth     = []string{"月份", "month"}
	cusDirection = []string{"进出口标志", "direction"}
	cusAmount    = []string{"金额", "amount"}
	cusCurrency  = []string{"币制", "currency"}
)

// RequiredColumns implements connectors.ColumnSource; peak_kw and arrears
// may be left out.
func (Electricity) RequiredColumns() [][]string {
	return [][]string{elAccount, colUSCC, elMonth, elConsumption, elUnit}
}

// RequiredColumns implements connectors.ColumnSource.
func (Water) RequiredColumns() [][]string { return [][]string{colUSCC, waterPeriod, waterVolume} }

// RequiredColumns implements connectors.ColumnSource; payroll_base_total
// may be left out.
func (SocialInsurance) RequiredColumns() [][]string {
	return [][]string{colUSCC, siPeriod, siHeadcount}
}

// RequiredColumns implements connectors.ColumnSource.
func (Customs) RequiredColumns() [][]string {
	return [][]string{cusUSCC, cusMonth, cusDirection, cusAmount, cusCurrency}
}

// unitFactor scales a quantity given in its stored unit; shared, since a
// decimal is immutable and making one allocates.
var unitFactor = decimal.NewFromInt(1)

func init() {
	kwhPerUnit["kWh"] = decimal.NewFromInt(1)
	kwhPerUnit["万千瓦时"] = decimal.NewFromInt(10_000)
	kwhPerUnit["MWh"] = decimal.NewFromInt(1_000)
	kwhPerUnit["亿千瓦时"] = decimal.NewFromInt(100_000_000)
}

// Electricity normalizes ops.electricity: one CSV line (UTF-8) per account
// and month, header account_no,uscc,month,consumption,unit,peak_kw,arrears.
// month is 2024-03, 202403 or 2024年3月; unit is kWh (also 千瓦时, 度) or
// 万千瓦时 (10,000 kWh); consumption is stored in kWh to 0.01 kWh.
// Consumption, peak load and arrears may not be negative
// (RejectImplausible); a month after the record was observed is a
// RejectFuturePeriod.
type Electricity struct{}

// Source implements firmbridge.Connector.
func (Electricity) Source() string { return SourceElectricity }

// SchemaVersions implements firmbridge.Connector.
func (Electricity) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c Electricity) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (Electricity) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	account := r.RequiredText(elAccount...)
	uscc := r.USCC(colUSCC...)
	month := r.Period(monthOnly, elMonth...)
	unit := r.Enum(electricityUnit, elUnit...)
	kwh := r.Scaled(kwhPerUnit[unit], elConsumption...)
	peak := r.OptionalScaled(unitFactor, elPeak...)
	arrears := r.OptionalYuan("", elArrears...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("month", month.Start, env.ObservedAt)
	r.NotNegative("consumption", kwh)
	if peak != nil {
		r.NotNegative("peak_kw", *peak)
	}
	if arrears != nil {
		r.NotNegative("arrears", *arrears)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return []firmbridge.Row{ElectricityRow{
		USCC: uscc, AccountNo: account, Month: month.Start, ConsumptionKWh: kwh, PeakKW: peak, Arrears: arrears, Lineage: l,
	}}, nil
}

// Water normalizes ops.water: one JSON object per firm and billing period
// (a month, or a quarter for quarterly billing). volume_m3 is in cubic
// metres; a suffix m3, m³, 立方米 or 吨 (a tonne of water) is accepted. It
// may not be negative; a period after the record was observed is a
// RejectFuturePeriod.
type Water struct{}

// Source implements firmbridge.Connector.
func (Water) Source() string { return SourceWater }

// SchemaVersions implements firmbridge.Connector.
func (Water) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c Water) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (Water) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(colUSCC...)
	period := r.Period(monthOrQuarter, waterPeriod...)
	vol := decimal.Decimal{}
	if !r.Failed() {
		raw := connectors.Fold(f.Get(waterVolume...))
		for _, suf := range []string{"立方米", "m³", "m3", "吨", "方"} {
			if len(raw) > len(suf) && raw[len(raw)-len(suf):] == suf {
				raw = raw[:len(raw)-len(suf)]
				break
			}
		}
		// A reader of its own, so that the reject names volume_m3.
		var sub connectors.Reader
		vol = sub.ScaledValue(unitFactor, "volume_m3", raw)
		if err := sub.Err(); err != nil {
			return nil, err
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("period", period.Start, env.ObservedAt)
	r.NotNegative("volume_m3", vol)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return []firmbridge.Row{WaterRow{
		USCC: uscc, PeriodStart: period.Start, PeriodEnd: period.End, PeriodKind: period.Kind.String(), VolumeM3: vol, Lineage: l,
	}}, nil
}

// SocialInsurance normalizes ops.social_insurance: one JSON object per firm
// and month or quarter (2024年第一季度) with the insured headcount (a whole
// number, never negative) and optionally the total contribution base in
// yuan (98.6万元). A period after the record was observed is a
// RejectFuturePeriod.
type SocialInsurance struct{}

// Source implements firmbridge.Connector.
func (SocialInsurance) Source() string { return SourceSocialInsurance }

// SchemaVersions implements firmbridge.Connector.
func (SocialInsurance) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c SocialInsurance) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (SocialInsurance) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(colUSCC...)
	period := r.Period(monthOrQuarter, siPeriod...)
	heads := r.Count(siHeadcount...)
	payroll := r.OptionalYuan("", siPayroll...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("period", period.Start, env.ObservedAt)
	if payroll != nil {
		r.NotNegative("payroll_base_total", *payroll)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return []firmbridge.Row{SocialInsuranceRow{
		USCC: uscc, PeriodStart: period.Start, PeriodEnd: period.End, PeriodKind: period.Kind.String(),
		InsuredHeadcount: uint32(heads), PayrollBaseTotal: payroll, Lineage: l,
	}}, nil
}

// Directions maps the customs import/export flag to canonical values.
var Directions = connectors.NewEnum("import/export flag", map[string][]string{
	"import": {"I", "进口", "进"},
	"export": {"E", "出口", "出"},
})

// Customs normalizes ops.customs: one CSV line (GB18030, Chinese header
// 企业统一社会信用代码,月份,进出口标志,金额,币制) per firm, month, direction
// and currency. The amount stays in its currency (ISO code; Chinese names
// and customs numeric codes such as 502 are mapped); it may not be negative.
type Customs struct{}

// Source implements firmbridge.Connector.
func (Customs) Source() string { return SourceCustoms }

// SchemaVersions implements firmbridge.Connector.
func (Customs) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c Customs) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (Customs) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	uscc := r.USCC(cusUSCC...)
	month := r.Period(monthOnly, cusMonth...)
	dir := r.Enum(Directions, cusDirection...)
	cur := r.Currency(cusCurrency...)
	amount := r.Money(cur, cusAmount...)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := connectors.MatchUSCC(env, uscc); err != nil {
		return nil, err
	}
	r.NotFuture("月份", month.Start, env.ObservedAt)
	r.NotNegative("金额", amount)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return []firmbridge.Row{CustomsRow{
		USCC: uscc, Month: month.Start, Direction: dir, Amount: amount, Currency: cur, Lineage: l,
	}}, nil
}
