package schema

import (
	"context"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// opsBranches read the operations tables (schema/migrations/0004_operations.sql).
var opsBranches = []branch{
	{kind: kindElectricity, table: "ops_electricity", firm: "uscc", key: "record_id", date: "month",
		fields: []string{"account_no", str("consumption_kwh"), opt("peak_kw"), opt("arrears")}},
	{kind: kindWater, table: "ops_water", firm: "uscc", key: "record_id", date: "period_start",
		fields: []string{str("period_end"), str("period_kind"), str("volume_m3")}},
	{kind: kindSocial, table: "ops_social_insurance", firm: "uscc", key: "record_id", date: "period_start",
		fields: []string{str("period_end"), str("period_kind"), str("insured_headcount"), opt("payroll_base_total")}},
	{kind: kindCustoms, table: "ops_customs", firm: "uscc", key: "record_id", date: "month",
		fields: []string{str("direction"), str("amount"), "currency"}},
}

// opsKinds are the kinds of the operations branches.
var opsKinds = kinds(opsBranches)

func (s ProfileReader) opsRecords(ctx context.Context, usccs []string, having []cond) ([]record, error) {
	return s.firmRecords(ctx, "operations", opsKinds, usccs, having)
}

// OperationsRecords implements firmbridge.ProfileReader.
func (s ProfileReader) OperationsRecords(ctx context.Context, q firmbridge.RecordQuery) (*firmbridge.Page[firmbridge.OperationsRecord], error) {
	parts, args := firmBranches(chosen(opsBranches, q.Sources), []string{q.USCC}, recordFilters(q))
	recs, next, err := s.page(ctx, "operations records", parts, args, q)
	if err != nil {
		return nil, err
	}
	od, err := decodeOps(recs)
	if err != nil {
		return nil, err
	}
	page := &firmbridge.Page[firmbridge.OperationsRecord]{Items: []firmbridge.OperationsRecord{}, Next: next}
	for _, r := range recs {
		item := od.items[r.kind+"\x00"+r.key]
		page.Items = append(page.Items, item)
	}
	return page, nil
}

type socialRow struct {
	start, end time.Time
	heads      int
	payroll    *decimal.Decimal
	rec        record
}

type customsRow struct {
	month     time.Time
	direction string
	currency  string
	amount    decimal.Decimal
	rec       record
}

// opsData is one firm's decoded operations records.
type opsData struct {
	elMonths   []time.Time
	elKWh      []decimal.Decimal
	elAccounts map[string]bool
	elLin      lineage
	water      []period
	waterLin   lineage
	social     []socialRow
	socialLin  lineage
	customs    []customsRow
	customsLin lineage
	items      map[string]firmbridge.OperationsRecord
}

func decodeOps(recs []record) (*opsData, error) {
	od := &opsData{elAccounts: map[string]bool{}, items: map[string]firmbridge.OperationsRecord{}}
	for _, r := range recs {
		fr := &fieldReader{r: r}
		item := firmbridge.OperationsRecord{Source: r.kind, RecordID: r.key, Date: r.date.Format(dateLayout), ObservedAt: r.observed.UTC()}
		switch r.kind {
		case kindElectricity:
			kwh := fr.dec(1)
			od.elMonths, od.elKWh = append(od.elMonths, r.date), append(od.elKWh, kwh)
			od.elAccounts[fr.text(0)] = true
			od.elLin.add(r)
			item.Electricity = &firmbridge.ElectricityRecord{AccountNo: fr.text(0), Month: r.date.Format(monthLayout), KWh: yuan(kwh),
				PeakKW: optYuan(fr.optDec(2)), Arrears: optYuan(fr.optDec(3))}
		case kindWater:
			p := period{start: r.date, end: fr.date(0), value: fr.dec(2)}
			od.water = append(od.water, p)
			od.waterLin.add(r)
			item.Water = &firmbridge.WaterRecord{PeriodStart: r.date.Format(dateLayout), PeriodEnd: p.end.Format(dateLayout),
				PeriodKind: fr.text(1), VolumeM3: yuan(p.value)}
		case kindSocial:
			s := socialRow{start: r.date, end: fr.date(0), heads: fr.int(2), payroll: fr.optDec(3), rec: r}
			od.social = append(od.social, s)
			od.socialLin.add(r)
			item.SocialInsurance = &firmbridge.SocialInsuranceRecord{PeriodStart: r.date.Format(dateLayout), PeriodEnd: s.end.Format(dateLayout),
				PeriodKind: fr.text(1), Headcount: s.heads, PayrollBase: optYuan(s.payroll)}
		case kindCustoms:
			c := customsRow{month: r.date, direction: fr.text(0), amount: fr.dec(1), currency: fr.text(2), rec: r}
			od.customs = append(od.customs, c)
			od.customsLin.add(r)
			item.Customs = &firmbridge.CustomsRecord{Month: r.date.Format(monthLayout), Direction: c.direction, Amount: yuan(c.amount), Currency: c.currency}
		}
		if fr.err != nil {
			return nil, fr.err
		}
		od.items[r.kind+"\x00"+r.key] = item
	}
	return od, nil
}

// electricity is the firm's consumption summed over its accounts per month.
func (od *opsData) electricity() []period { return monthly(od.elMonths, od.elKWh) }

// section builds the operations section from records already cut at floor.
func (od *opsData) section(floor time.Time) *firmbridge.OperationsSection {
	sec := &firmbridge.OperationsSection{Trade: []firmbridge.TradeFlow{}, ElectricityAccounts: len(od.elAccounts)}
	var lin lineage
	sec.Electricity, _ = buildSeries("kWh", od.electricity(), -1, floor)
	sec.Water, _ = buildSeries("m3", od.water, -1, floor)
	sec.Headcount = od.headcount(floor)
	for _, l := range []lineage{od.elLin, od.waterLin, od.socialLin, od.customsLin} {
		lin.merge(l)
	}

	// One anchor for every flow, the newest month declared, so that a
	// flow that stopped shows as stopped rather than as current.
	type flow struct{ direction, currency string }
	months := map[flow][]time.Time{}
	amounts := map[flow][]decimal.Decimal{}
	anchor := -1
	for _, c := range od.customs {
		f := flow{c.direction, c.currency}
		months[f] = append(months[f], c.month)
		amounts[f] = append(amounts[f], c.amount)
		anchor = max(anchor, monthIndex(c.month))
	}
	for f := range months {
		s, _ := buildSeries(f.currency, monthly(months[f], amounts[f]), anchor, floor)
		sec.Trade = append(sec.Trade, firmbridge.TradeFlow{Direction: f.direction, Currency: f.currency, Series: s})
	}
	sort.Slice(sec.Trade, func(i, j int) bool {
		if sec.Trade[i].Direction != sec.Trade[j].Direction {
			return sec.Trade[i].Direction < sec.Trade[j].Direction
		}
		return sec.Trade[i].Currency < sec.Trade[j].Currency
	})
	sec.AsOf, sec.Sources = lin.result()
	return sec
}

// newestSocial keeps one row per period start, the newest observation.
func (od *opsData) newestSocial() []socialRow {
	by := map[time.Time]socialRow{}
	for _, s := range od.social {
		if old, ok := by[s.start]; !ok || s.rec.observed.After(old.rec.observed) ||
			(s.rec.observed.Equal(old.rec.observed) && s.rec.key > old.rec.key) {
			by[s.start] = s
		}
	}
	out := make([]socialRow, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

func (od *opsData) headcount(floor time.Time) firmbridge.HeadcountTrend {
	h := firmbridge.HeadcountTrend{Points: []firmbridge.HeadcountPoint{}, MissingMonths: []string{}}
	rows := od.newestSocial()
	ps := make([]period, len(rows))
	for i, s := range rows {
		ps[i] = period{start: s.start, end: s.end}
	}
	anchor := latestMonth(ps)
	if anchor < 0 {
		return h
	}
	w := windowAt(anchor, floorMonth(floor))
	h.From, h.To = monthLabel(w.first), monthLabel(w.last)
	var in []period
	for _, s := range rows {
		if monthIndex(s.start) < w.first || monthIndex(s.end) > w.last {
			continue
		}
		in = append(in, period{start: s.start, end: s.end})
		h.Points = append(h.Points, firmbridge.HeadcountPoint{Period: periodLabel(s.start, s.end), PeriodStart: s.start.Format(dateLayout),
			PeriodEnd: s.end.Format(dateLayout), Headcount: s.heads, PayrollBase: optYuan(s.payroll)})
	}
	h.MissingMonths = w.missing(in)
	if latest, earlier, ok := yearApart(rows, w); ok {
		n, d := latest.heads, latest.heads-earlier.heads
		h.Latest, h.Change12m = &n, &d
	} else if len(h.Points) > 0 {
		n := h.Points[len(h.Points)-1].Headcount
		h.Latest = &n
	}
	return h
}

// yearApart returns the newest social insurance period of the window and
// the one that started 12 months before it, when both exist.
func yearApart(rows []socialRow, w window) (latest, earlier socialRow, ok bool) {
	var in []socialRow
	for _, s := range rows {
		if monthIndex(s.start) >= w.first && monthIndex(s.end) <= w.last {
			in = append(in, s)
		}
	}
	if len(in) == 0 {
		return latest, earlier, false
	}
	latest = in[len(in)-1]
	for _, s := range in {
		if monthIndex(s.start) == monthIndex(latest.start)-12 && monthIndex(s.end) == monthIndex(latest.end)-12 {
			return latest, s, true
		}
	}
	return latest, earlier, false
}
