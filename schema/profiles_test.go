package schema_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/patent"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

const (
	firmA     = "91350100M000100Y43"
	firmAName = "福州某某科技有限公司"
)

var (
	synthFirms = synth.Firms(7, 2)
	firmB      = synthFirms[0]
	firmC      = synthFirms[1]
	bank1      = synth.Banks(1)[0]
)

const bank2 = "福州某某农村商业银行股份有限公司"

// envelopes builds provider records and normalizes them through the
// connectors registry, as ingest would.
type envelopes struct {
	t    testing.TB
	reg  *connectors.Registry
	rows []firmbridge.Row
}

func newEnvelopes(t testing.TB) *envelopes {
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return &envelopes{t: t, reg: reg}
}

func (e *envelopes) add(env firmbridge.Envelope) {
	e.t.Helper()
	rows, err := e.reg.Normalize(context.Background(), env, env.ObservedAt.Add(time.Minute))
	if err != nil {
		e.t.Fatalf("normalize %s %s: %v", env.Source, env.RecordID, err)
	}
	e.rows = append(e.rows, rows...)
}

func (e *envelopes) json(source, id, uscc string, observed time.Time, payload map[string]any) {
	e.t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	e.add(firmbridge.Envelope{RecordID: id, Source: source, SchemaVersion: 1, USCC: uscc, ObservedAt: observed, Payload: b})
}

func (e *envelopes) csv(source, id, uscc string, observed time.Time, header string, fields ...string) {
	e.t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(fields)
	w.Flush()
	b, _ := json.Marshal(strings.TrimRight(buf.String(), "\n"))
	e.add(firmbridge.Envelope{RecordID: id, Source: source, SchemaVersion: 1, USCC: uscc, ObservedAt: observed, Header: header, Payload: b})
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func appNo(t *testing.T, year, typ, serial int) string {
	digits := fmt.Sprintf("%04d%d%07d", year, typ, serial)
	c, err := patent.ApplicationCheckChar(digits)
	if err != nil {
		t.Fatal(err)
	}
	return digits + "." + string(c)
}

// Application numbers of the fixture's patents.
type fixturePatents struct{ p1, p2, p3, p4, p5, p6, p7 string }

// profileFixture is two years of one firm's data (firm A), months
// 2022-07 to 2024-06, with numbers chosen so that every figure of its
// profile can be worked out by hand (see TestReadProfiles), plus patents
// moving between firms A, B and C.
func profileFixture(t *testing.T) ([]firmbridge.Row, fixturePatents) {
	e := newEnvelopes(t)
	const vatHeader = "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	vat := func(id string, start time.Time, sales, out string, filed, observed time.Time) {
		e.csv("tax.vat_return", id, firmA, observed, vatHeader, firmA, firmAName, start.Format("2006-01-02"),
			start.AddDate(0, 1, -1).Format("2006-01-02"), filed.Format("2006-01-02"), sales, out, "0.00", out, "元")
	}
	for m := date(2022, 6, 1); !m.After(date(2024, 6, 1)); m = m.AddDate(0, 1, 0) {
		sales, out := "100,000.00", "13000.00"
		switch {
		case m.Equal(date(2022, 6, 1)):
			sales, out = "99,999.99", "13000.00"
		case m.Equal(date(2024, 6, 1)):
			sales, out = "120,000.50", "15600.07"
		case !m.Before(date(2023, 7, 1)):
			sales, out = "120,000.00", "15600.00"
		}
		filed := m.AddDate(0, 1, 9) // the 10th of the next month: on time
		if m.Equal(date(2022, 8, 1)) || m.Equal(date(2023, 9, 1)) {
			filed = m.AddDate(0, 1, 19) // the 20th: late
		}
		id := "VAT-A-" + m.Format("200601")
		if m.Equal(date(2024, 5, 1)) {
			// First sent with a wrong figure, corrected later under the same id.
			vat(id, m, "110,000.00", "14300.00", filed, filed.AddDate(0, 0, 1))
		}
		vat(id, m, sales, out, filed, filed.AddDate(0, 0, 2))
		if m.Equal(date(2023, 3, 1)) {
			// The same period sent earlier under another record id, with
			// another figure: one return per period, the newest counts.
			vat("FILE-A-"+m.Format("200601"), m, "55,555.55", "7222.22", filed, filed.AddDate(0, 0, 1))
		}
	}
	cit := func(year int, revenue, profit, payable string, filed time.Time) {
		e.json("tax.cit_annual", fmt.Sprintf("CIT-A-%d", year), firmA, filed.AddDate(0, 0, 1), map[string]any{
			"taxpayer_id": firmA, "tax_year": year, "operating_revenue": revenue, "total_profit": profit,
			"tax_payable": payable, "currency": "CNY", "filed_on": filed.Format("2006-01-02")})
	}
	cit(2022, "1,150,000.00", "100,000.00", "15,000.00", date(2023, 5, 20))
	cit(2023, "1,380,000.00", "150,000.00", "22,500.00", date(2024, 6, 5)) // after May 31: late
	e.json("tax.credit_rating", "NSXY-A-2022", firmA, date(2023, 4, 20), map[string]any{"uscc": strings.ToLower(firmA), "year": "2022年", "rating": "A级"})
	e.json("tax.credit_rating", "NSXY-A-2023", firmA, date(2024, 4, 20), map[string]any{"uscc": firmA, "year": "2023", "rating": "B"})
	arrears := func(id, asOf, typ, amount string, observed time.Time) {
		e.json("tax.arrears", id, firmA, observed, map[string]any{"uscc": firmA, "as_of": asOf, "tax_type": typ, "amount_owed": amount})
	}
	arrears("QS-A-1", "2024/03/31", "增值税", "12.5万", date(2024, 4, 5))
	arrears("QS-A-2", "2024/05/31", "增值税", "0", date(2024, 6, 5))
	arrears("QS-A-3", "2024/04/30", "企业所得税", "8,560.00", date(2024, 5, 5))

	const elHeader = "account_no,uscc,month,consumption,unit,peak_kw,arrears"
	const cusHeader = "企业统一社会信用代码,月份,进出口标志,金额,币制"
	for m := date(2022, 7, 1); !m.After(date(2024, 6, 1)); m = m.AddDate(0, 1, 0) {
		last := !m.Before(date(2023, 7, 1))
		observed := m.AddDate(0, 1, 5)
		kwh, water, usd := "1,000", "100", "8,000.00"
		if last {
			kwh, water, usd = "1100", "90", "10,000.00"
		}
		e.csv("ops.electricity", "EL-1-"+m.Format("200601"), firmA, observed, elHeader, "0591000001", firmA, m.Format("2006-01"), kwh, "kWh", "", "")
		if m.Equal(date(2024, 6, 1)) {
			e.csv("ops.electricity", "EL-2-"+m.Format("200601"), firmA, observed, elHeader, "0591000002", firmA, m.Format("200601"), "0.11", "万千瓦时", "3.5", "0.00")
		} else {
			e.csv("ops.electricity", "EL-2-"+m.Format("200601"), firmA, observed, elHeader, "0591000002", firmA, m.Format("2006-01"), kwh, "度", "", "")
		}
		if !m.Equal(date(2023, 2, 1)) { // one month of water never arrived
			e.json("ops.water", "W-A-"+m.Format("200601"), firmA, observed, map[string]any{"uscc": firmA, "period": m.Format("2006-01"), "volume_m3": water})
		}
		e.csv("ops.customs", "CUS-A-E-USD-"+m.Format("200601"), firmA, observed, cusHeader, firmA, m.Format("2006-01"), "E", usd, "USD")
	}
	e.csv("ops.customs", "CUS-A-I-EUR-202401", firmA, date(2024, 2, 20), cusHeader, firmA, "2024-01", "I", "5,000.00", "EUR")
	e.csv("ops.customs", "CUS-A-I-EUR-202402", firmA, date(2024, 3, 20), cusHeader, firmA, "2024-02", "I", "2,500.50", "EUR")
	for q := date(2022, 7, 1); !q.After(date(2024, 4, 1)); q = q.AddDate(0, 3, 0) {
		heads, payroll := 50, "90万元"
		if !q.Before(date(2023, 7, 1)) {
			heads, payroll = 60, "1,080,000.00"
		}
		period := fmt.Sprintf("%dQ%d", q.Year(), (int(q.Month())-1)/3+1)
		e.json("ops.social_insurance", "SI-A-"+period, firmA, q.AddDate(0, 3, 15), map[string]any{
			"uscc": firmA, "period": period, "insured_headcount": heads, "payroll_base_total": payroll})
	}

	p := fixturePatents{p1: appNo(t, 2022, 1, 1), p2: appNo(t, 2022, 2, 2), p3: appNo(t, 2022, 2, 3), p4: appNo(t, 2023, 3, 4),
		p5: appNo(t, 2021, 1, 5), p6: appNo(t, 2022, 1, 6), p7: appNo(t, 2023, 2, 7)}
	applicant := func(name, uscc string) map[string]any { return map[string]any{"name": name, "uscc": uscc} }
	bib := func(no, kind, filed string, grant string, ipc []string, observed time.Time, applicants ...map[string]any) {
		payload := map[string]any{"application_no": "CN" + no, "kind": kind, "title": "一种方法 " + no, "applicants": applicants,
			"ipc": ipc, "filing_date": filed, "grant_date": nil, "status": "pending"}
		if grant != "" {
			payload["grant_date"], payload["status"] = grant, "granted"
		}
		e.json("patent.bibliographic", "BIB-"+no, applicants[0]["uscc"].(string), observed, payload)
	}
	a, b, c := applicant(firmAName, firmA), applicant(firmB.Name, firmB.USCC), applicant(firmC.Name, firmC.USCC)
	bib(p.p1, "发明", "20220310", "", []string{"H01M 10/42", "H02J 7/00"}, date(2022, 4, 1), a)
	bib(p.p1, "发明", "20220310", "20240115", []string{"H01M 10/42", "H02J 7/00"}, date(2024, 1, 20), a) // granted later
	bib(p.p2, "实用新型", "20220501", "20221101", []string{"H01M 10/44"}, date(2022, 11, 10), a)
	bib(p.p3, "utility model", "20220601", "20221201", []string{"G06F 17/00"}, date(2022, 12, 10), a)
	bib(p.p4, "外观设计", "20230801", "", nil, date(2023, 8, 20), a)
	bib(p.p5, "invention", "20210201", "20230201", []string{"H01M 10/42"}, date(2023, 2, 10), a)
	bib(p.p6, "发明", "20220901", "20240301", []string{"H02J 7/00"}, date(2024, 3, 10), b)
	bib(p.p7, "实用新型", "20230105", "", []string{"H01M 10/42"}, date(2023, 2, 1), a, c)
	const leHeader = "application_no,event_date,event_code,event_text,from_party,to_party"
	event := func(no, when, code, from, to, keyed string) {
		d, _ := time.Parse("2006-01-02", when)
		e.csv("patent.legal_event", "LE-"+no+"-"+code+"-"+when, keyed, d.AddDate(0, 0, 7), leHeader, no, when, code, code, from, to)
	}
	partyA := firmAName + "(" + firmA + ")"
	partyB := firmB.Name + "（" + firmB.USCC + "）"
	event(p.p1, "2024-01-15", "GRANT", "", "", firmA)
	event(p.p2, "2023-03-01", "PLEDGE", partyA, bank1.Name+"("+bank1.USCC+")", firmA)
	event(p.p3, "2023-01-10", "PLEDGE", partyA, bank2, firmA)
	event(p.p3, "2024-01-10", "PLEDGE_RELEASE", partyA, bank2, firmA)
	event(p.p5, "2023-06-01", "TRANSFER", partyA, partyB, firmA)
	event(p.p6, "2024-04-01", "TRANSFER", partyB, partyA, firmB.USCC)
	return e.rows, p
}

func loadFixture(t *testing.T) (schema.ProfileReader, fixturePatents) {
	store := testenv.Store(t)
	rows, p := profileFixture(t)
	ctx := context.Background()
	// Delivered twice, as providers do: every figure must still count once.
	for range 2 {
		if err := store.InsertRows(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	return schema.ProfileReader{Store: store}, p
}

var allScopes = []string{firmbridge.ScopeTax, firmbridge.ScopePatent, firmbridge.ScopeOperations}

func TestReadProfiles(t *testing.T) {
	r, p := loadFixture(t)
	ctx := context.Background()
	got, err := r.ReadProfiles(ctx, []firmbridge.ProfileRequest{
		{USCC: firmA, Scopes: allScopes},
		{USCC: firmB.USCC, Scopes: []string{firmbridge.ScopePatent}},
		{USCC: firmC.USCC, Scopes: []string{firmbridge.ScopePatent}},
		{USCC: "91350100MA2XYZ0000", Scopes: allScopes}, // never seen
	})
	if err != nil {
		t.Fatal(err)
	}
	a := got[firmA]
	if a == nil || a.Identity.Name != firmAName || a.Identity.AsOf == nil {
		t.Fatalf("identity %+v", a.Identity)
	}

	t.Run("tax", func(t *testing.T) {
		tax := a.Tax
		rev := tax.Revenue
		eq(t, "revenue window", rev.From+".."+rev.To, "2022-07..2024-06")
		eq(t, "revenue points", len(rev.Points), 24)
		eq(t, "first point", rev.Points[0], firmbridge.SeriesPoint{Period: "2022-07", PeriodStart: "2022-07-01", PeriodEnd: "2022-07-31", Value: "100000.00"})
		eq(t, "corrected point", rev.Points[22].Value, "120000.00") // 2024-05, corrected from 110000.00
		eq(t, "last point", rev.Points[23].Value, "120000.50")
		eq(t, "missing", len(rev.MissingMonths), 0)
		eq(t, "last 12m", rev.Last12, "1440000.50")
		eq(t, "prior 12m", rev.Prior12, "1200000.00")
		eq(t, "covered", [2]int{rev.Last12Covered, rev.Prior12Covered}, [2]int{12, 12})
		eq(t, "yoy", deref(rev.YoYGrowth), "0.2000")
		eq(t, "unit", rev.Unit, "CNY")
		eq(t, "returns", len(tax.Returns), 24)
		eq(t, "newest return", tax.Returns[0].PeriodStart, "2024-06-01")
		eq(t, "sales total", tax.SalesTotal, "2640000.50")
		eq(t, "payable total", tax.TaxPayableTotal, "343200.07")
		eq(t, "late", tax.LateFilings, 2)
		eq(t, "vat paid last", tax.TaxPaid.VATLast12, "187200.07")
		eq(t, "vat paid prior", tax.TaxPaid.VATPrior12, "156000.00")
		eq(t, "cit paid", tax.TaxPaid.CITByYear, []firmbridge.YearlyYuan{{Year: 2023, Amount: "22500.00"}, {Year: 2022, Amount: "15000.00"}})
		eq(t, "punctuality", tax.Punctuality, firmbridge.FilingPunctuality{VATReturns: 24, VATLate: 2, CITFilings: 2, CITLate: 1, OnTimeShare: ptr("0.8846")})
		eq(t, "cit 2023", tax.CITFilings[0], firmbridge.CITFiling{TaxYear: 2023, OperatingRevenue: "1380000.00", TotalProfit: "150000.00",
			TaxPayable: "22500.00", FiledOn: "2024-06-05", Late: true, RecordID: "CIT-A-2023"})
		eq(t, "ratings", tax.CreditRatings, []firmbridge.CreditRating{{Year: 2023, Rating: "B", RecordID: "NSXY-A-2023"}, {Year: 2022, Rating: "A", RecordID: "NSXY-A-2022"}})
		eq(t, "arrears", tax.Arrears, firmbridge.ArrearsSummary{Outstanding: "8560.00", AsOf: "2024-05-31", ByTaxType: []firmbridge.Arrear{
			{TaxType: "cit", TaxTypeName: "企业所得税", AsOf: "2024-04-30", AmountOwed: "8560.00", RecordID: "QS-A-3"},
			{TaxType: "vat", TaxTypeName: "增值税", AsOf: "2024-05-31", AmountOwed: "0.00", RecordID: "QS-A-2"}}})
		eq(t, "sources", tax.Sources, []string{"tax.arrears", "tax.cit_annual", "tax.credit_rating", "tax.vat_return"})
		eq(t, "as of", tax.AsOf.Format(time.DateOnly), "2024-07-12") // the June return, observed two days after filing
	})

	t.Run("operations", func(t *testing.T) {
		ops := a.Operations
		el := ops.Electricity
		eq(t, "accounts", ops.ElectricityAccounts, 2)
		eq(t, "el points", len(el.Points), 24)
		eq(t, "el first", el.Points[0].Value, "2000.00")
		eq(t, "el last (万千瓦时 scaled)", el.Points[23].Value, "2200.00")
		eq(t, "el halves", [2]string{el.Last12, el.Prior12}, [2]string{"26400.00", "24000.00"})
		eq(t, "el yoy", deref(el.YoYGrowth), "0.1000")
		w := ops.Water
		eq(t, "water missing", w.MissingMonths, []string{"2023-02"})
		eq(t, "water halves", [2]string{w.Last12, w.Prior12}, [2]string{"1080.00", "1100.00"})
		eq(t, "water covered", [2]int{w.Last12Covered, w.Prior12Covered}, [2]int{12, 11})
		eq(t, "water yoy", w.YoYGrowth, (*string)(nil))
		eq(t, "water why", w.YoYUnavailable, firmbridge.GrowthIncomplete)
		h := ops.Headcount
		eq(t, "headcount points", len(h.Points), 8)
		eq(t, "headcount newest", h.Points[7], firmbridge.HeadcountPoint{Period: "2024Q2", PeriodStart: "2024-04-01", PeriodEnd: "2024-06-30",
			Headcount: 60, PayrollBase: ptr("1080000.00")})
		eq(t, "headcount oldest payroll", deref(h.Points[0].PayrollBase), "900000.00")
		eq(t, "latest", *h.Latest, 60)
		eq(t, "change", *h.Change12m, 10)
		eq(t, "trade flows", len(ops.Trade), 2)
		usd, eur := ops.Trade[0], ops.Trade[1]
		eq(t, "usd", usd.Direction+" "+usd.Currency, "export USD")
		eq(t, "usd halves", [2]string{usd.Series.Last12, usd.Series.Prior12}, [2]string{"120000.00", "96000.00"})
		eq(t, "usd yoy", deref(usd.Series.YoYGrowth), "0.2500")
		eq(t, "eur", eur.Direction+" "+eur.Currency, "import EUR")
		eq(t, "eur last", eur.Series.Last12, "7500.50")
		eq(t, "eur window anchored on the newest declaration", eur.Series.To, "2024-06")
		eq(t, "eur yoy", eur.Series.YoYUnavailable, firmbridge.GrowthIncomplete)
		eq(t, "sources", ops.Sources, []string{"ops.customs", "ops.electricity", "ops.social_insurance", "ops.water"})
	})

	t.Run("consistency", func(t *testing.T) {
		sig := a.Consistency.Signals
		eq(t, "signals", len(sig), 2)
		eq(t, "revenue vs electricity", sig[0].Status, firmbridge.SignalConsistent)
		eq(t, "metrics", [3]string{deref(sig[0].Metrics["revenue_yoy_growth"]), deref(sig[0].Metrics["electricity_yoy_growth"]), deref(sig[0].Metrics["gap"])},
			[3]string{"0.2000", "0.1000", "0.1000"})
		eq(t, "headcount vs payroll", sig[1].Status, firmbridge.SignalConsistent)
		eq(t, "per head", deref(sig[1].Metrics["payroll_base_per_head_monthly_yuan"]), "6000.00")
		eq(t, "growths", [2]string{deref(sig[1].Metrics["headcount_growth"]), deref(sig[1].Metrics["payroll_base_growth"])}, [2]string{"0.2000", "0.2000"})
		eq(t, "sources", a.Consistency.Sources, []string{"ops.electricity", "ops.social_insurance", "tax.vat_return"})
	})

	t.Run("patents", func(t *testing.T) {
		pa := a.Patents
		eq(t, "total", pa.Counts.Total, 6)
		eq(t, "transferred out", pa.Counts.TransferredOut, 1)
		eq(t, "by kind", pa.Counts.ByKind, map[string]int{"invention": 2, "utility_model": 3, "design": 1})
		eq(t, "by status", pa.Counts.ByStatus, map[string]int{"granted": 4, "pending": 2})
		eq(t, "by kind and status", pa.Counts.ByKindStatus, map[string]map[string]int{
			"invention": {"granted": 2}, "utility_model": {"granted": 2, "pending": 1}, "design": {"pending": 1}})
		var grants []string
		for _, g := range pa.RecentGrants {
			grants = append(grants, g.ApplicationNo+"@"+g.GrantDate)
		}
		eq(t, "recent grants", grants, []string{p.p6 + "@2024-03-01", p.p1 + "@2024-01-15", p.p3 + "@2022-12-01", p.p2 + "@2022-11-01"})
		eq(t, "main ipc", pa.RecentGrants[1].MainIPC, "H01M 10/42")
		eq(t, "top ipc", pa.TopIPC, []firmbridge.IPCCount{{Subclass: "H01M", Patents: 3}, {Subclass: "H02J", Patents: 2}, {Subclass: "G06F", Patents: 1}})
		eq(t, "active pledges", len(pa.ActivePledges), 1)
		pl := pa.ActivePledges[0]
		eq(t, "pledge", [3]string{pl.ApplicationNo, pl.PledgedOn, pl.Pledgee.USCC}, [3]string{p.p2, "2023-03-01", bank1.USCC})
		eq(t, "pledgor", pl.Pledgor.USCC, firmA)
		eq(t, "pledgees", pa.Pledgees, []firmbridge.Pledgee{{Party: firmbridge.Party{Name: bank1.Name, USCC: bank1.USCC}, ActivePledges: 1}})
		var transfers []string
		for _, tr := range pa.Transfers {
			transfers = append(transfers, tr.ApplicationNo+" "+tr.Direction+" "+tr.Date)
		}
		eq(t, "transfers", transfers, []string{p.p6 + " in 2024-04-01", p.p5 + " out 2023-06-01"})
		eq(t, "sources", pa.Sources, []string{"patent.bibliographic", "patent.legal_event"})

		pb := got[firmB.USCC].Patents
		eq(t, "B holds what A transferred", [2]int{pb.Counts.Total, pb.Counts.TransferredOut}, [2]int{1, 1})
		eq(t, "B by kind", pb.Counts.ByKind, map[string]int{"invention": 1})
		eq(t, "B transfers", len(pb.Transfers), 2)
		eq(t, "B has no tax section", got[firmB.USCC].Tax, (*firmbridge.TaxSection)(nil))
		pc := got[firmC.USCC].Patents
		eq(t, "C co-applicant", pc.Counts.Total, 1)
		eq(t, "C no pledges", len(pc.ActivePledges), 0)
	})

	t.Run("a firm never seen", func(t *testing.T) {
		n := got["91350100MA2XYZ0000"]
		if n == nil || n.Identity.Name != "" || n.Identity.AsOf != nil || n.Tax.AsOf != nil || len(n.Tax.Returns) != 0 ||
			n.Patents.Counts.Total != 0 || n.Operations.Electricity.YoYUnavailable != firmbridge.GrowthNoData {
			t.Fatalf("unknown firm: %+v", n)
		}
		if n.Consistency.Signals[0].Status != firmbridge.SignalInsufficientData {
			t.Errorf("signal %+v", n.Consistency.Signals[0])
		}
	})
}

var dateLike = regexp.MustCompile(`^(\d{4})-(\d{2})(-\d{2})?$|^(\d{4})Q([1-4])$`)

// datesBefore lists every date, month or quarter in v's JSON that starts
// before floor.
func datesBefore(t *testing.T, v any, floor time.Time) []string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	_ = json.Unmarshal(b, &doc)
	var bad []string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				walk(path+"."+k, v)
			}
		case []any:
			for i, v := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), v)
			}
		case string:
			m := dateLike.FindStringSubmatch(x)
			if m == nil {
				return
			}
			var d time.Time
			switch {
			case m[3] != "":
				d, _ = time.Parse(time.DateOnly, x)
			case m[1] != "":
				d, _ = time.Parse("2006-01", x)
			default:
				var y, q int
				fmt.Sscanf(x, "%dQ%d", &y, &q)
				d = date(y, time.Month(3*q-2), 1)
			}
			if d.Before(floor) {
				bad = append(bad, path+"="+x)
			}
		}
	}
	walk("", doc)
	return bad
}

func TestReadProfiles_DataFromCutsEverySection(t *testing.T) {
	r, p := loadFixture(t)
	floor := date(2023, 7, 1)
	got, err := r.ReadProfiles(context.Background(), []firmbridge.ProfileRequest{{USCC: firmA, Scopes: allScopes, DataFrom: floor}})
	if err != nil {
		t.Fatal(err)
	}
	a := got[firmA]
	a.Identity = nil // not dated data: the firm's name
	if bad := datesBefore(t, a, floor); len(bad) > 0 {
		t.Errorf("dates before data_from %s:\n%s", floor.Format(time.DateOnly), strings.Join(bad, "\n"))
	}
	eq(t, "revenue window", a.Tax.Revenue.From+".."+a.Tax.Revenue.To, "2023-07..2024-06")
	eq(t, "revenue yoy withheld", a.Tax.Revenue.YoYUnavailable, firmbridge.GrowthIncomplete)
	eq(t, "revenue last", a.Tax.Revenue.Last12, "1440000.50")
	eq(t, "revenue prior", a.Tax.Revenue.Prior12, "0.00")
	eq(t, "returns", len(a.Tax.Returns), 12)
	eq(t, "cit (years start before the cut)", len(a.Tax.CITFilings), 0)
	eq(t, "ratings", len(a.Tax.CreditRatings), 0)
	eq(t, "arrears kept", a.Tax.Arrears.Outstanding, "8560.00")
	eq(t, "patents filed since", a.Patents.Counts.Total, 1)
	eq(t, "pledged before the cut", len(a.Patents.ActivePledges), 0)
	eq(t, "transfers since", len(a.Patents.Transfers), 1)
	eq(t, "transfer", a.Patents.Transfers[0].ApplicationNo, p.p6)
	eq(t, "headcount", len(a.Operations.Headcount.Points), 4)
	eq(t, "no change without the year before", a.Operations.Headcount.Change12m, (*int)(nil))
	eq(t, "signal", a.Consistency.Signals[0].Status, firmbridge.SignalInsufficientData)

	// A data_from inside a month starts the series at the next month.
	got, err = r.ReadProfiles(context.Background(), []firmbridge.ProfileRequest{{USCC: firmA, Scopes: allScopes, DataFrom: date(2023, 6, 15)}})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "mid-month cut", got[firmA].Tax.Revenue.From, "2023-07")
	if bad := datesBefore(t, got[firmA].Tax, date(2023, 6, 15)); len(bad) > 0 {
		t.Errorf("dates before 2023-06-15: %v", bad)
	}
}

// walk reads every page of a listing and checks order, duplicates and
// the page size.
func walk[T any](t *testing.T, q firmbridge.RecordQuery, read func(context.Context, firmbridge.RecordQuery) (*firmbridge.Page[T], error),
	key func(T) (date, kind, id string)) []T {
	t.Helper()
	var all []T
	seen := map[string]bool{}
	var prev *firmbridge.RecordKey
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages")
		}
		page, err := read(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > q.Limit || (page.Next != nil && len(page.Items) != q.Limit) {
			t.Fatalf("page of %d items with limit %d, next %v", len(page.Items), q.Limit, page.Next)
		}
		for _, it := range page.Items {
			d, k, id := key(it)
			if seen[k+"/"+id] {
				t.Fatalf("record %s/%s on two pages", k, id)
			}
			seen[k+"/"+id] = true
			cur := &firmbridge.RecordKey{Date: d, Kind: k, Key: id}
			if prev != nil && !(cur.Date < prev.Date || (cur.Date == prev.Date && (cur.Kind > prev.Kind || (cur.Kind == prev.Kind && cur.Key > prev.Key)))) {
				t.Fatalf("record %+v after %+v: out of order", cur, prev)
			}
			prev = cur
		}
		all = append(all, page.Items...)
		if page.Next == nil {
			return all
		}
		q.After = page.Next
	}
}

func taxKey(r firmbridge.TaxRecord) (string, string, string) { return r.Date, r.Source, r.RecordID }
func opsKey(r firmbridge.OperationsRecord) (string, string, string) {
	return r.Date, r.Source, r.RecordID
}
func patentKey(r firmbridge.PatentRecord) (string, string, string) {
	return r.FilingDate, "patent.bibliographic", r.ApplicationNo
}

func TestRecordPages(t *testing.T) {
	r, p := loadFixture(t)

	t.Run("tax: every record once, whatever the page size", func(t *testing.T) {
		for _, limit := range []int{1, 7, 32, 1000} {
			all := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: limit}, r.TaxRecords, taxKey)
			// 26 VAT returns (one period sent twice under two ids: a
			// listing shows records as sent), 2 CIT filings, 2 ratings,
			// 3 arrears.
			eq(t, fmt.Sprintf("records (limit %d)", limit), len(all), 33)
		}
		all := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 5}, r.TaxRecords, taxKey)
		for _, it := range all {
			if it.RecordID == "VAT-A-202405" && it.VATReturn.Sales != "120000.00" {
				t.Errorf("corrected return shows %s", it.VATReturn.Sales)
			}
			if (it.VATReturn != nil) != (it.Source == "tax.vat_return") || (it.Arrears != nil) != (it.Source == "tax.arrears") {
				t.Errorf("record %+v has the wrong body", it)
			}
		}
	})

	t.Run("tax filters", func(t *testing.T) {
		all := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 4, Sources: []string{"tax.vat_return"},
			From: date(2023, 1, 1), To: date(2023, 12, 31)}, r.TaxRecords, taxKey)
		eq(t, "2023 returns", len(all), 13) // 2023-03 twice, see above
		all = walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 4, Sources: []string{"tax.arrears", "tax.credit_rating"}}, r.TaxRecords, taxKey)
		eq(t, "arrears and ratings", len(all), 5)
		all = walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 3, DataFrom: date(2024, 1, 1)}, r.TaxRecords, taxKey)
		for _, it := range all {
			if it.Date < "2024-01-01" {
				t.Errorf("record %s dated %s before data_from", it.RecordID, it.Date)
			}
		}
		eq(t, "since 2024", len(all), 6+3)
	})

	t.Run("operations", func(t *testing.T) {
		all := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 10}, r.OperationsRecords, opsKey)
		// 48 electricity months, 23 water, 8 social insurance quarters, 26 customs lines.
		eq(t, "records", len(all), 48+23+8+26)
		var el *firmbridge.ElectricityRecord
		for _, it := range all {
			if it.RecordID == "EL-2-202406" {
				el = it.Electricity
			}
		}
		eq(t, "scaled", *el, firmbridge.ElectricityRecord{AccountNo: "0591000002", Month: "2024-06", KWh: "1100.00", PeakKW: ptr("3.50"), Arrears: ptr("0.00")})
		customs := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 3, Sources: []string{"ops.customs"}, From: date(2024, 1, 1), To: date(2024, 2, 29)},
			r.OperationsRecords, opsKey)
		eq(t, "customs jan-feb 2024", len(customs), 4)
	})

	t.Run("patents", func(t *testing.T) {
		all := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 2}, r.PatentRecords, patentKey)
		held := map[string]bool{}
		for _, it := range all {
			held[it.ApplicationNo] = it.Held
		}
		eq(t, "linked applications", held, map[string]bool{p.p1: true, p.p2: true, p.p3: true, p.p4: true, p.p5: false, p.p6: true, p.p7: true})
		granted := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 2, Statuses: []string{"granted"}, Kinds: []string{"invention"}}, r.PatentRecords, patentKey)
		var nos []string
		for _, it := range granted {
			nos = append(nos, it.ApplicationNo)
		}
		slices.Sort(nos)
		want := []string{p.p1, p.p5, p.p6}
		slices.Sort(want)
		eq(t, "granted inventions", nos, want)
		for _, it := range all {
			if it.ApplicationNo == p.p3 {
				var codes []string
				for _, e := range it.Events {
					codes = append(codes, e.Code+" "+e.Date)
				}
				eq(t, "p3 events", codes, []string{"PLEDGE 2023-01-10", "PLEDGE_RELEASE 2024-01-10"})
			}
		}
		since := walk(t, firmbridge.RecordQuery{USCC: firmA, Limit: 2, DataFrom: date(2023, 1, 1)}, r.PatentRecords, patentKey)
		eq(t, "filed since 2023", len(since), 2)
	})
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestReadProfiles_BatchEqualsSingle reads generated provider data for
// many firms at once and one by one: the batch must not mix firms up, and
// each revenue figure must match the VAT rows summed independently.
func TestReadProfiles_BatchEqualsSingle(t *testing.T) {
	store := testenv.Store(t)
	firms := synth.Firms(42, 25)
	end := date(2024, 7, 1)
	e := newEnvelopes(t)
	for _, rec := range synth.Generate(42, firms, 30, end, synth.Options{Duplicates: 0.05}) {
		e.add(rec.Envelope)
	}
	ctx := context.Background()
	if err := store.InsertRows(ctx, e.rows); err != nil {
		t.Fatal(err)
	}
	r := schema.ProfileReader{Store: store}
	var reqs []firmbridge.ProfileRequest
	for i, f := range firms {
		req := firmbridge.ProfileRequest{USCC: f.USCC, Scopes: allScopes}
		if i%3 == 1 {
			req.DataFrom = date(2023, 4, 1)
		}
		if i%4 == 2 {
			req.Scopes = []string{firmbridge.ScopePatent}
		}
		reqs = append(reqs, req)
	}
	batch, err := r.ReadProfiles(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != len(firms) {
		t.Fatalf("%d profiles for %d firms", len(batch), len(firms))
	}

	// The newest version of each VAT return, from the rows themselves.
	type vat struct {
		start, end time.Time
		sales      string
		version    uint64
	}
	newest := map[string]vat{}
	for _, row := range e.rows {
		if row.Table() != "tax_vat_returns" {
			continue
		}
		v := row.Values()
		cols := row.Columns()
		get := func(name string) any { return v[slices.Index(cols, name)] }
		key := get("uscc").(string) + "/" + get("record_id").(string)
		cur := vat{start: get("period_start").(time.Time), end: get("period_end").(time.Time), sales: fmt.Sprint(get("sales")), version: get("version").(uint64)}
		if old, ok := newest[key]; !ok || cur.version > old.version {
			newest[key] = cur
		}
	}
	for _, req := range reqs {
		single, err := r.ReadProfiles(ctx, []firmbridge.ProfileRequest{req})
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "profile of "+req.USCC+" in a batch and alone", batch[req.USCC], single[req.USCC])
		tax := batch[req.USCC].Tax
		if tax == nil {
			continue
		}
		if bad := datesBefore(t, tax, req.DataFrom); len(bad) > 0 {
			t.Errorf("%s: dates before data_from: %v", req.USCC, bad)
		}
		// Sum the returns that lie in the revenue window, independently.
		var points int
		for key, v := range newest {
			if !strings.HasPrefix(key, req.USCC+"/") || v.start.Format("2006-01") < tax.Revenue.From || v.end.Format("2006-01") > tax.Revenue.To {
				continue
			}
			points++
		}
		eq(t, req.USCC+" revenue points", len(tax.Revenue.Points), points)
		eq(t, req.USCC+" returns", len(tax.Returns), points)
	}
}

// TestReadProfiles_BoundedQueries reads 500 firms and counts, in
// ClickHouse's own query log, the queries that named one of them: the
// batch must cost a fixed number of round trips (identities, tax,
// patents, operations), not one per firm.
func TestReadProfiles_BoundedQueries(t *testing.T) {
	r, _ := loadFixture(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	marker := synth.MakeUSCC(rng, "91", "350100") // in no other test's queries
	reqs := []firmbridge.ProfileRequest{{USCC: firmA, Scopes: allScopes}, {USCC: marker, Scopes: allScopes}}
	for len(reqs) < 500 {
		reqs = append(reqs, firmbridge.ProfileRequest{USCC: synth.MakeUSCC(rng, "91", "350100"), Scopes: allScopes,
			DataFrom: date(2023, 1, 1)})
	}
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
	got, err := r.ReadProfiles(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 || got[firmA].Tax.Revenue.Last12 != "1440000.50" {
		t.Fatalf("%d profiles; firm A's revenue %s", len(got), got[firmA].Tax.Revenue.Last12)
	}
	conn := r.Conn()
	// The server logs a query as finished after the client has its
	// answer, so a flush right away can miss the last one: count until
	// four are there (or 5 s pass), then once more in case of extras.
	count := func() uint64 {
		if err := conn.Exec(context.Background(), "SYSTEM FLUSH LOGS"); err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.query_log WHERE type = 2 AND position(query, ?) > 0",
			marker).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := count()
	for deadline := time.Now().Add(5 * time.Second); n < 4 && time.Now().Before(deadline); n = count() {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n = count(); n != 4 {
		t.Errorf("%d queries named the batch's firms, want 4 (identities, tax, patents, operations)", n)
	}
}
