package schema

import (
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// divergence is how far two growth rates may differ before a signal says
// divergent: 25 percentage points. Revenue, electricity, headcount and
// payroll of a going concern move roughly together; a gap wider than this
// is worth a loan officer's question, not a verdict.
var divergence = decimal.RequireFromString("0.25")

// Reasons a consistency signal cannot be computed.
const (
	reasonNoEarlierPeriod = "no_period_12_months_earlier"
	reasonNoPayrollBase   = "payroll_base_missing"
)

// consistency compares sources of one firm; td is nil when the consent
// does not cover tax.
func consistency(td *taxData, od *opsData, floor time.Time) *firmbridge.ConsistencySection {
	var lin lineage
	sec := &firmbridge.ConsistencySection{Signals: []firmbridge.ConsistencySignal{
		revenueVsElectricity(td, od, floor, &lin),
		headcountVsPayroll(od, floor, &lin),
	}}
	sec.AsOf, sec.Sources = lin.result()
	return sec
}

func signal(name string) firmbridge.ConsistencySignal {
	return firmbridge.ConsistencySignal{Name: name, Threshold: divergence.StringFixed(4), Metrics: map[string]*string{}}
}

// judge sets the status from two growth rates.
func judge(sig *firmbridge.ConsistencySignal, a, b decimal.Decimal) {
	gap := a.Sub(b)
	sig.Metrics["gap"] = ratio(gap)
	sig.Status = firmbridge.SignalConsistent
	if gap.Abs().GreaterThan(divergence) {
		sig.Status = firmbridge.SignalDivergent
	}
}

// revenueVsElectricity compares the year-on-year growth of VAT sales and
// of electricity consumption over the same months: those ending with the
// newest month both sources cover.
func revenueVsElectricity(td *taxData, od *opsData, floor time.Time, lin *lineage) firmbridge.ConsistencySignal {
	sig := signal(firmbridge.SignalRevenueVsElectricity)
	if td == nil {
		sig.Status, sig.Reason = firmbridge.SignalWithheld, firmbridge.WithheldScopeNotGranted
		return sig
	}
	rev, el := td.salesPeriods(), od.electricity()
	ra, ea := latestMonth(rev), latestMonth(el)
	if ra < 0 || ea < 0 {
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, firmbridge.GrowthNoData
		return sig
	}
	anchor := min(ra, ea)
	_, rh := buildSeries("CNY", rev, anchor, floor)
	_, eh := buildSeries("kWh", el, anchor, floor)
	w := windowAt(anchor, floorMonth(floor))
	sig.From, sig.To = monthLabel(w.first), monthLabel(w.last)
	rg, rWhy := rh.growth()
	eg, eWhy := eh.growth()
	sig.Metrics["revenue_yoy_growth"], sig.Metrics["electricity_yoy_growth"] = rg, eg
	for _, v := range td.vat {
		lin.add(v.rec)
	}
	lin.merge(od.elLin)
	switch {
	case rg == nil:
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, "revenue_"+rWhy
	case eg == nil:
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, "electricity_"+eWhy
	default:
		r, _ := rh.growthValue()
		e, _ := eh.growthValue()
		judge(&sig, r, e)
	}
	return sig
}

// headcountVsPayroll compares the growth of the insured headcount with
// that of the payroll base between the newest social insurance period and
// the one a year before it, and gives the monthly payroll base per head.
func headcountVsPayroll(od *opsData, floor time.Time, lin *lineage) firmbridge.ConsistencySignal {
	sig := signal(firmbridge.SignalHeadcountVsPayroll)
	rows := od.newestSocial()
	ps := make([]period, len(rows))
	for i, s := range rows {
		ps[i] = period{start: s.start, end: s.end}
	}
	anchor := latestMonth(ps)
	if anchor < 0 {
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, firmbridge.GrowthNoData
		return sig
	}
	lin.merge(od.socialLin)
	latest, earlier, ok := yearApart(rows, windowAt(anchor, floorMonth(floor)))
	sig.To = latest.end.Format(monthLayout)
	if latest.payroll != nil && latest.heads > 0 {
		months := monthIndex(latest.end) - monthIndex(latest.start) + 1
		sig.Metrics["payroll_base_per_head_monthly_yuan"] = optYuan(ptr(latest.payroll.DivRound(decimal.NewFromInt(int64(latest.heads*months)), 2)))
	}
	if !ok {
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, reasonNoEarlierPeriod
		return sig
	}
	sig.From = earlier.start.Format(monthLayout)
	if earlier.heads == 0 {
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, "headcount_"+firmbridge.GrowthZeroBase
		return sig
	}
	one := decimal.NewFromInt(1)
	hg := decimal.NewFromInt(int64(latest.heads)).DivRound(decimal.NewFromInt(int64(earlier.heads)), 12).Sub(one)
	sig.Metrics["headcount_growth"] = ratio(hg)
	switch {
	case latest.payroll == nil || earlier.payroll == nil:
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, reasonNoPayrollBase
	case earlier.payroll.IsZero():
		sig.Status, sig.Reason = firmbridge.SignalInsufficientData, "payroll_"+firmbridge.GrowthZeroBase
	default:
		pg := latest.payroll.DivRound(*earlier.payroll, 12).Sub(one)
		sig.Metrics["payroll_base_growth"] = ratio(pg)
		judge(&sig, hg, pg)
	}
	return sig
}

func ptr[T any](v T) *T { return &v }
