package schema

import (
	"context"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// taxBranches read the tax tables (schema/migrations/0002_tax.sql). The
// data date of an annual record is 1 January of its year.
var taxBranches = []branch{
	{kind: kindVAT, table: "tax_vat_returns", firm: "uscc", key: "record_id", date: "period_start",
		fields: []string{str("period_end"), str("period_kind"), str("filed_on"), str("late"),
			str("sales"), str("output_tax"), str("input_tax"), str("tax_payable")}},
	{kind: kindCIT, table: "tax_cit_annual", firm: "uscc", key: "record_id", date: "toDate(concat(toString(tax_year), '-01-01'))",
		fields: []string{str("tax_year"), str("operating_revenue"), str("total_profit"), str("tax_payable"), str("filed_on"), str("late")}},
	{kind: kindRating, table: "tax_credit_ratings", firm: "uscc", key: "record_id", date: "toDate(concat(toString(rating_year), '-01-01'))",
		fields: []string{str("rating_year"), str("rating")}},
	{kind: kindArrears, table: "tax_arrears", firm: "uscc", key: "record_id", date: "as_of",
		fields: []string{str("tax_type"), str("tax_type_name"), str("amount_owed")}},
}

// taxKinds are the kinds of the tax branches.
var taxKinds = kinds(taxBranches)

func (s ProfileReader) taxRecords(ctx context.Context, usccs []string, having []cond) ([]record, error) {
	return s.firmRecords(ctx, "tax", taxKinds, usccs, having)
}

// TaxRecords implements firmbridge.ProfileReader.
func (s ProfileReader) TaxRecords(ctx context.Context, q firmbridge.RecordQuery) (*firmbridge.Page[firmbridge.TaxRecord], error) {
	parts, args := firmBranches(chosen(taxBranches, q.Sources), []string{q.USCC}, recordFilters(q))
	recs, next, err := s.page(ctx, "tax records", parts, args, q)
	if err != nil {
		return nil, err
	}
	td, err := decodeTax(recs)
	if err != nil {
		return nil, err
	}
	page := &firmbridge.Page[firmbridge.TaxRecord]{Items: []firmbridge.TaxRecord{}, Next: next}
	for _, r := range recs {
		item := firmbridge.TaxRecord{Source: r.kind, RecordID: r.key, Date: r.date.Format(dateLayout), ObservedAt: r.observed.UTC()}
		switch r.kind {
		case kindVAT:
			v := td.vatByID[r.key].p
			item.VATReturn = &v
		case kindCIT:
			c := td.citByID[r.key]
			item.CITFiling = &c
		case kindRating:
			c := td.ratingByID[r.key]
			item.CreditRating = &c
		case kindArrears:
			a := td.arrearsByID[r.key].a
			item.Arrears = &a
		}
		page.Items = append(page.Items, item)
	}
	return page, nil
}

type vatRow struct {
	p          firmbridge.VATPeriod
	start, end time.Time
	sales, pay decimal.Decimal
	rec        record
}

type arrearsRow struct {
	a      firmbridge.Arrear
	asOf   time.Time
	amount decimal.Decimal
	rec    record
}

// taxData is one firm's decoded tax records.
type taxData struct {
	vat         []vatRow
	vatByID     map[string]vatRow
	cit         []record
	citByID     map[string]firmbridge.CITFiling
	ratings     []record
	ratingByID  map[string]firmbridge.CreditRating
	arrears     []arrearsRow
	arrearsByID map[string]arrearsRow
}

func decodeTax(recs []record) (*taxData, error) {
	td := &taxData{vatByID: map[string]vatRow{}, citByID: map[string]firmbridge.CITFiling{},
		ratingByID: map[string]firmbridge.CreditRating{}, arrearsByID: map[string]arrearsRow{}}
	for _, r := range recs {
		fr := &fieldReader{r: r}
		switch r.kind {
		case kindVAT:
			v := vatRow{start: r.date, end: fr.date(0), sales: fr.dec(4), pay: fr.dec(7), rec: r}
			out, in := fr.dec(5), fr.dec(6)
			v.p = firmbridge.VATPeriod{PeriodStart: v.start.Format(dateLayout), PeriodEnd: v.end.Format(dateLayout),
				PeriodKind: fr.text(1), FiledOn: fr.date(2).Format(dateLayout), Late: fr.text(3) == "1",
				Sales: yuan(v.sales), OutputTax: yuan(out), InputTax: yuan(in), TaxPayable: yuan(v.pay), RecordID: r.key}
			td.vat = append(td.vat, v)
			td.vatByID[r.key] = v
		case kindCIT:
			td.cit = append(td.cit, r)
			td.citByID[r.key] = firmbridge.CITFiling{TaxYear: fr.int(0), OperatingRevenue: yuan(fr.dec(1)), TotalProfit: yuan(fr.dec(2)),
				TaxPayable: yuan(fr.dec(3)), FiledOn: fr.date(4).Format(dateLayout), Late: fr.text(5) == "1", RecordID: r.key}
		case kindRating:
			td.ratings = append(td.ratings, r)
			td.ratingByID[r.key] = firmbridge.CreditRating{Year: fr.int(0), Rating: fr.text(1), RecordID: r.key}
		case kindArrears:
			a := arrearsRow{asOf: r.date, amount: fr.dec(2), rec: r}
			a.a = firmbridge.Arrear{TaxType: fr.text(0), TaxTypeName: fr.text(1), AsOf: r.date.Format(dateLayout), AmountOwed: yuan(a.amount), RecordID: r.key}
			td.arrears = append(td.arrears, a)
			td.arrearsByID[r.key] = a
		}
		if fr.err != nil {
			return nil, fr.err
		}
	}
	td.vat = newestPerPeriod(td.vat)
	return td, nil
}

// newestPerPeriod keeps one VAT return per period, the newest observation:
// a firm files one return per period, and a provider may send it again
// under another record id (an amended return, or a file pushed with other
// ids); counting both would double the period's sales.
func newestPerPeriod(vat []vatRow) []vatRow {
	type span struct{ start, end time.Time }
	by := map[span]int{}
	out := vat[:0:0]
	for _, v := range vat {
		k := span{v.start, v.end}
		i, seen := by[k]
		switch {
		case !seen:
			by[k] = len(out)
			out = append(out, v)
		case v.rec.observed.After(out[i].rec.observed) || (v.rec.observed.Equal(out[i].rec.observed) && v.rec.key > out[i].rec.key):
			out[i] = v
		}
	}
	return out
}

// salesPeriods are the VAT returns as periods of taxable sales; anchor is
// the newest month they cover.
func (td *taxData) salesPeriods() []period {
	ps := make([]period, len(td.vat))
	for i, v := range td.vat {
		ps[i] = period{start: v.start, end: v.end, value: v.sales}
	}
	return ps
}

// newestPerYear keeps, of several records for one year, the newest
// observation (a provider may re-file a year under a new record id).
func newestPerYear(recs []record, year func(record) int) []record {
	by := map[int]record{}
	for _, r := range recs {
		y := year(r)
		if old, ok := by[y]; !ok || r.observed.After(old.observed) || (r.observed.Equal(old.observed) && r.key > old.key) {
			by[y] = r
		}
	}
	out := make([]record, 0, len(by))
	for _, r := range by {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return year(out[i]) > year(out[j]) })
	return out
}

// section builds the tax section from records already cut at floor.
func (td *taxData) section(floor time.Time) *firmbridge.TaxSection {
	var lin lineage
	sec := &firmbridge.TaxSection{Returns: []firmbridge.VATPeriod{}, CITFilings: []firmbridge.CITFiling{},
		CreditRatings: []firmbridge.CreditRating{}, TaxPaid: firmbridge.TaxPaid{CITByYear: []firmbridge.YearlyYuan{}},
		Arrears: firmbridge.ArrearsSummary{ByTaxType: []firmbridge.Arrear{}}}

	ps := td.salesPeriods()
	anchor := latestMonth(ps)
	sec.Revenue, _ = buildSeries("CNY", ps, anchor, floor)
	var inWindow []vatRow
	if anchor >= 0 {
		w := windowAt(anchor, floorMonth(floor))
		for _, v := range td.vat {
			if monthIndex(v.start) >= w.first && monthIndex(v.end) <= w.last {
				inWindow = append(inWindow, v)
			}
		}
	}
	sort.Slice(inWindow, func(i, j int) bool {
		if !inWindow[i].start.Equal(inWindow[j].start) {
			return inWindow[i].start.After(inWindow[j].start)
		}
		return inWindow[i].p.RecordID < inWindow[j].p.RecordID
	})
	sales, pay := decimal.Zero, decimal.Zero
	payable := make([]period, 0, len(inWindow))
	for _, v := range inWindow {
		sec.Returns = append(sec.Returns, v.p)
		sales, pay = sales.Add(v.sales), pay.Add(v.pay)
		payable = append(payable, period{start: v.start, end: v.end, value: v.pay})
		if v.p.Late {
			sec.LateFilings++
		}
		lin.add(v.rec)
	}
	sec.SalesTotal, sec.TaxPayableTotal = yuan(sales), yuan(pay)
	if anchor >= 0 {
		h := split(payable, anchor, floorMonth(floor))
		sec.TaxPaid.VATLast12, sec.TaxPaid.VATPrior12 = yuan(h.last), yuan(h.prior)
	} else {
		sec.TaxPaid.VATLast12, sec.TaxPaid.VATPrior12 = yuan(decimal.Zero), yuan(decimal.Zero)
	}

	for _, r := range newestPerYear(td.cit, func(r record) int { return td.citByID[r.key].TaxYear }) {
		c := td.citByID[r.key]
		sec.CITFilings = append(sec.CITFilings, c)
		sec.TaxPaid.CITByYear = append(sec.TaxPaid.CITByYear, firmbridge.YearlyYuan{Year: c.TaxYear, Amount: c.TaxPayable})
		if c.Late {
			sec.Punctuality.CITLate++
		}
		lin.add(r)
	}
	for _, r := range newestPerYear(td.ratings, func(r record) int { return td.ratingByID[r.key].Year }) {
		sec.CreditRatings = append(sec.CreditRatings, td.ratingByID[r.key])
		lin.add(r)
	}

	sec.Punctuality.VATReturns, sec.Punctuality.VATLate = len(sec.Returns), sec.LateFilings
	sec.Punctuality.CITFilings = len(sec.CITFilings)
	if n := sec.Punctuality.VATReturns + sec.Punctuality.CITFilings; n > 0 {
		onTime := n - sec.Punctuality.VATLate - sec.Punctuality.CITLate
		sec.Punctuality.OnTimeShare = ratio(decimal.NewFromInt(int64(onTime)).DivRound(decimal.NewFromInt(int64(n)), 12))
	}

	// The newest figure of each tax type is what is owed now; an older
	// figure of the same type has been superseded (0.00 means settled).
	newest := map[[2]string]arrearsRow{}
	for _, a := range td.arrears {
		k := [2]string{a.a.TaxType, a.a.TaxTypeName}
		old, ok := newest[k]
		if !ok || a.asOf.After(old.asOf) || (a.asOf.Equal(old.asOf) && a.rec.observed.After(old.rec.observed)) {
			newest[k] = a
		}
	}
	owed := decimal.Zero
	var latest time.Time
	for _, a := range newest {
		sec.Arrears.ByTaxType = append(sec.Arrears.ByTaxType, a.a)
		owed = owed.Add(a.amount)
		if a.asOf.After(latest) {
			latest = a.asOf
		}
		lin.add(a.rec)
	}
	sort.Slice(sec.Arrears.ByTaxType, func(i, j int) bool {
		a, b := sec.Arrears.ByTaxType[i], sec.Arrears.ByTaxType[j]
		if a.TaxType != b.TaxType {
			return a.TaxType < b.TaxType
		}
		return a.TaxTypeName < b.TaxTypeName
	})
	sec.Arrears.Outstanding = yuan(owed)
	if !latest.IsZero() {
		sec.Arrears.AsOf = latest.Format(dateLayout)
	}
	sec.AsOf, sec.Sources = lin.result()
	return sec
}
