package synth

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"golang.org/x/text/width"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
	"github.com/firmbridge/firmbridge/connectors/patent"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

// Options tunes Generate.
type Options struct {
	// Malformed is the share (0-1) of records made unacceptable: a bad USCC,
	// a bad amount, an unknown unit, a future period, a USCC mismatch, a
	// negative consumption, a broken encoding... Record.WantReject names the
	// reject code each is expected to get.
	Malformed float64
	// Duplicates is the share (0-1) of records delivered a second time,
	// unchanged, as providers do.
	Duplicates float64
}

// Record is one generated envelope and what normalizing it should yield.
type Record struct {
	Envelope firmbridge.Envelope
	// WantReject is the firmbridge.Reject* code the record must be rejected
	// with, or "" for a valid record.
	WantReject string
	// Duplicate marks the second delivery of a record.
	Duplicate bool
}

// Provider CSV headers.
const (
	HeaderVATReturn   = "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	HeaderLegalEvent  = "application_no,event_date,event_code,event_text,from_party,to_party"
	HeaderElectricity = "account_no,uscc,month,consumption,unit,peak_kw,arrears"
	HeaderCustoms     = "企业统一社会信用代码,月份,进出口标志,金额,币制"
)

// Envelopes returns the envelopes of Generate.
func Envelopes(seed int64, firms []Firm, months int, end time.Time, opt Options) []firmbridge.Envelope {
	recs := Generate(seed, firms, months, end, opt)
	out := make([]firmbridge.Envelope, len(recs))
	for i, r := range recs {
		out[i] = r.Envelope
	}
	return out
}

// Generate returns the records the providers send about firms over the
// given number of calendar months before end's month, in every provider
// format: monthly VAT returns (quarterly, in 万元, for small-scale
// taxpayers), CIT annual filings, credit ratings, occasional arrears,
// patents (grants re-sent later under the same record id with a newer
// observed_at), legal events (grants, pledges to banks and their release,
// lapses, transfers), electricity (mixed month forms and units), water,
// social insurance (Chinese quarter forms for quarterly filers) and customs
// declarations in CNY, USD and EUR. GB18030 sources travel base64-encoded.
// No record is observed after end. Records are ordered by observed_at.
func Generate(seed int64, firms []Firm, months int, end time.Time, opt Options) []Record {
	g := &gen{seed: seed, firms: firms, end: end, banks: Banks(seed), unis: universities(seed)}
	endMonth := connectors.MonthPeriod(end.In(connectors.ChinaTime).Year(), end.In(connectors.ChinaTime).Month())
	first := endMonth.Start.AddDate(0, -months, 0)
	for i := range firms {
		g.firm(i, first, months)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0xbad))
	var out []Record
	for _, d := range g.drafts {
		if d.observed.After(end) {
			continue
		}
		want := ""
		if opt.Malformed > 0 && rng.Float64() < opt.Malformed {
			want = g.corrupt(rng, d)
		}
		env := d.envelope()
		out = append(out, Record{Envelope: env, WantReject: want})
		if opt.Duplicates > 0 && rng.Float64() < opt.Duplicates {
			out = append(out, Record{Envelope: env, WantReject: want, Duplicate: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Envelope, out[j].Envelope
		if !a.ObservedAt.Equal(b.ObservedAt) {
			return a.ObservedAt.Before(b.ObservedAt)
		}
		return a.RecordID < b.RecordID
	})
	return out
}

// draft is a record before encoding, so that corruptions can act on fields.
type draft struct {
	source   string
	id       string
	uscc     string // envelope uscc ("" to omit)
	observed time.Time
	names    []string
	values   []any // string for CSV; any JSON value for JSON
	csv      bool
	header   string
	b64      bool   // GB18030 bytes, base64-encoded
	charset  string // declared charset ("" leaves it to detection)
	badB64   bool   // corrupt the base64
	firm     string // the firm's canonical USCC
}

func (d *draft) set(name string, v any) {
	for i, n := range d.names {
		if n == name {
			d.values[i] = v
			return
		}
	}
	d.names = append(d.names, name)
	d.values = append(d.values, v)
}

func (d *draft) get(name string) any {
	for i, n := range d.names {
		if n == name {
			return d.values[i]
		}
	}
	return nil
}

func (d *draft) envelope() firmbridge.Envelope {
	env := firmbridge.Envelope{RecordID: d.id, Source: d.source, SchemaVersion: 1, USCC: d.uscc, ObservedAt: d.observed}
	if !d.csv {
		var b bytes.Buffer
		b.WriteByte('{')
		for i, n := range d.names {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(n)
			v, _ := json.Marshal(d.values[i])
			b.Write(k)
			b.WriteString(": ")
			b.Write(v)
		}
		b.WriteByte('}')
		env.Payload = b.Bytes()
		return env
	}
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	rec := make([]string, len(d.values))
	for i, v := range d.values {
		rec[i] = fmt.Sprint(v)
	}
	_ = w.Write(rec)
	w.Flush()
	line := strings.TrimRight(sb.String(), "\n")
	env.Header = d.header
	if d.b64 {
		b, err := connectors.EncodeGB18030(line)
		if err != nil {
			panic(fmt.Sprintf("synth: %v", err))
		}
		s := base64.StdEncoding.EncodeToString(b)
		if d.badB64 {
			s = "%%" + s[2:]
		}
		p, _ := json.Marshal(s)
		env.Payload, env.PayloadEncoding, env.Charset = p, "base64", d.charset
		return env
	}
	p, _ := json.Marshal(line)
	env.Payload, env.Charset = p, d.charset
	return env
}

type gen struct {
	seed   int64
	firms  []Firm
	end    time.Time
	banks  []Bank
	unis   []Bank
	drafts []*draft
	// accounts holds the grid account numbers handed out: a utility's
	// account number identifies one customer, and record ids build on it.
	accounts map[string]bool
	// applications holds the patent application numbers handed out: an
	// application number identifies one patent, and record ids build on it.
	applications map[string]bool
}

// rng returns a random stream for one record, seeded by the seed and the
// record's natural key, so that a record does not change when the span or
// the other records do.
func (g *gen) rng(key ...string) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(g.seed), hash64(key...)))
}

func (g *gen) add(d *draft) {
	if d.firm == "" {
		d.firm = d.uscc
	}
	g.drafts = append(g.drafts, d)
}

// at returns a moment on day t at a working hour, in China time.
func at(rng *rand.Rand, t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 8+rng.IntN(10), rng.IntN(60), rng.IntN(60), 0, connectors.ChinaTime)
}

func (g *gen) firm(i int, first time.Time, months int) {
	f := g.firms[i]
	rng := rand.New(rand.NewPCG(uint64(g.seed), hash64(f.USCC)))
	city := cityOf(f.City)
	g.vat(rng, f, first, months)
	g.cit(rng, f, first, months)
	g.ratings(rng, f, first, months)
	g.arrears(rng, f, first, months)
	g.patents(rng, i, first, months)
	g.electricity(rng, f, city, first, months)
	g.water(rng, f, first, months)
	g.social(rng, f, first, months)
	if f.Exporter {
		g.customs(rng, f, first, months)
	}
}

func cityOf(name string) City {
	for _, c := range Cities {
		if c.Name == name {
			return c
		}
	}
	return Cities[0]
}

// quirkUSCC writes a USCC the way some providers do.
func quirkUSCC(rng *rand.Rand, u string) string {
	switch rng.IntN(10) {
	case 0:
		return strings.ToLower(u)
	case 1:
		return width.Widen.String(u)
	case 2:
		return u[:4] + " " + u[4:8] + " " + u[8:14] + " " + u[14:]
	case 3:
		return u[:8] + "-" + u[8:]
	case 4:
		return " " + u + " "
	}
	return u
}

// envUSCC is the envelope's uscc: always the firm's canonical USCC, since
// it is also the Kafka key that keeps one firm's records in order. (The
// connectors accept envelopes without one; their tests cover that.)
func envUSCC(_ *rand.Rand, u string) string { return u }

func round2(v float64) decimal.Decimal { return decimal.NewFromFloat(v).Round(2) }

// money formats an amount with or without thousands separators.
func money(d decimal.Decimal, sep bool) string {
	s := d.StringFixed(2)
	if !sep {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	out := b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}

func dateForm(rng *rand.Rand, t time.Time) string {
	switch rng.IntN(10) {
	case 0:
		return t.Format("2006/01/02")
	case 1:
		return t.Format("20060102")
	case 2:
		return strconv.Itoa(int(t.Sub(connectors.Date(1899, 12, 30)).Hours() / 24))
	}
	return t.Format("2006-01-02")
}

func monthForm(rng *rand.Rand, m time.Time) string {
	switch rng.IntN(3) {
	case 0:
		return m.Format("200601")
	case 1:
		return fmt.Sprintf("%d年%d月", m.Year(), m.Month())
	}
	return m.Format("2006-01")
}

var cnQuarter = []string{"", "一", "二", "三", "四"}

func seasonal(m time.Month) float64 { return 1 + 0.15*math.Sin(float64(m)/12*2*math.Pi) }

func (g *gen) vat(rng *rand.Rand, f Firm, first time.Time, months int) {
	var periods []connectors.Period
	p := connectors.MonthPeriod(first.Year(), first.Month())
	if f.SmallScale {
		p = connectors.QuarterPeriod(first.Year(), (int(first.Month())-1)/3+1)
		if p.Start.Before(first) {
			p = p.Next()
		}
	}
	last := first.AddDate(0, months, -1)
	for ; !p.End.After(last); p = p.Next() {
		periods = append(periods, p)
	}
	for _, p := range periods {
		rng := g.rng(f.USCC, "vat", p.String())
		filed := p.End.AddDate(0, 0, 5+rng.IntN(10))
		if rng.IntN(12) == 0 {
			filed = p.End.AddDate(0, 0, 16+rng.IntN(12))
		}
		observed := at(rng, filed.AddDate(0, 0, 1+rng.IntN(3)))
		nMonths := 1.0
		if p.Kind == connectors.PeriodQuarter {
			nMonths = 3
		}
		salesY := f.MonthlySales * nMonths * seasonal(p.Start.Month()) * (0.75 + rng.Float64()*0.5)
		d := &draft{source: tax.SourceVATReturn, id: fmt.Sprintf("STA-VAT-%s-%s", f.USCC, p.String()),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: observed, csv: true, header: HeaderVATReturn,
			b64: true, charset: []string{"gb18030", "gb18030", "gbk", ""}[rng.IntN(4)]}
		var sales, out, in, pay, unit string
		if f.SmallScale {
			rate := []float64{0.03, 0.01}[rng.IntN(2)]
			sW := round2(salesY / 10_000)
			oW := round2(salesY * rate / 10_000)
			sales, out, in, pay, unit = money(sW, false), money(oW, false), "0.00", money(oW, false), "万元"
		} else {
			s := round2(salesY)
			o := s.Mul(decimal.RequireFromString("0.13")).Round(2)
			share := 0.55 + rng.Float64()*0.4
			if rng.IntN(15) == 0 {
				share = 1.05 + rng.Float64()*0.3
			}
			i := o.Mul(decimal.NewFromFloat(share)).Round(2)
			pp := decimal.Max(o.Sub(i), decimal.Zero)
			sep := rng.IntN(2) == 0
			sales, out, in, pay, unit = money(s, sep), money(o, sep), money(i, sep), money(pp, sep), "元"
		}
		d.names = strings.Split(HeaderVATReturn, ",")
		d.values = []any{quirkUSCC(rng, f.USCC), f.Name, p.Start.Format("2006-01-02"), p.End.Format("2006-01-02"),
			dateForm(rng, filed), sales, out, in, pay, unit}
		g.add(d)
	}
}

func (g *gen) cit(rng *rand.Rand, f Firm, first time.Time, months int) {
	for y := first.Year(); y < first.AddDate(0, months, 0).Year(); y++ {
		if connectors.Date(y, 1, 1).Before(first) && y != first.Year() {
			continue
		}
		rng := g.rng(f.USCC, "cit", strconv.Itoa(y))
		filed := connectors.Date(y+1, time.Month(3+rng.IntN(3)), 1+rng.IntN(28))
		if rng.IntN(20) == 0 {
			filed = connectors.Date(y+1, time.June, 1+rng.IntN(20))
		}
		revenue := round2(f.MonthlySales * 12 * (0.9 + rng.Float64()*0.2))
		margin := -0.05 + rng.Float64()*0.2
		profit := revenue.Mul(decimal.NewFromFloat(margin)).Round(2)
		rate := decimal.RequireFromString("0.25")
		if f.Industry != "machinery" {
			rate = decimal.RequireFromString("0.15")
		}
		payable := decimal.Max(profit, decimal.Zero).Mul(rate).Round(2)
		d := &draft{source: tax.SourceCITAnnual, id: fmt.Sprintf("STA-CIT-%s-%d", f.USCC, y),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, filed.AddDate(0, 0, 2))}
		var year any = y
		if rng.IntN(3) == 0 {
			year = strconv.Itoa(y)
		}
		d.set("taxpayer_id", quirkUSCC(rng, f.USCC))
		d.set("tax_year", year)
		d.set("operating_revenue", money(revenue, true))
		d.set("total_profit", money(profit, true))
		d.set("tax_payable", money(payable, true))
		d.set("currency", "CNY")
		d.set("filed_on", filed.Format("2006-01-02"))
		g.add(d)
	}
}

func (g *gen) ratings(rng *rand.Rand, f Firm, first time.Time, months int) {
	for y := first.Year(); y < first.AddDate(0, months, 0).Year(); y++ {
		rng := g.rng(f.USCC, "rating", strconv.Itoa(y))
		published := connectors.Date(y+1, time.April, 10+rng.IntN(15))
		r := []string{"A", "A", "A", "B", "B", "B", "M", "C", "D"}[min(rng.IntN(9), 6+rng.IntN(3))]
		if rng.IntN(2) == 0 {
			r += "级"
		}
		d := &draft{source: tax.SourceCreditRating, id: fmt.Sprintf("STA-NSXY-%s-%d", f.USCC, y),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, published)}
		d.set("uscc", quirkUSCC(rng, f.USCC))
		d.set("year", fmt.Sprintf("%d年", y))
		d.set("rating", r)
		g.add(d)
	}
}

func (g *gen) arrears(rng *rand.Rand, f Firm, first time.Time, months int) {
	if rng.IntN(6) != 0 {
		return
	}
	for k := 0; k < 1+rng.IntN(2); k++ {
		m := first.AddDate(0, rng.IntN(months), 0)
		asOf := m.AddDate(0, 1, -1)
		typ := []string{"增值税", "企业所得税", "城市维护建设税", "印花税", "房产税", "水利建设基金"}[rng.IntN(6)]
		amount := []string{"12.5万", "8,560.00", "3.2万元", "1,204.37", "0.86万"}[rng.IntN(5)]
		d := &draft{source: tax.SourceArrears, id: fmt.Sprintf("STA-QS-%s-%s-%d", f.USCC, asOf.Format("20060102"), k),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, asOf.AddDate(0, 0, 3+rng.IntN(5)))}
		d.set("uscc", quirkUSCC(rng, f.USCC))
		d.set("as_of", asOf.Format("2006/01/02"))
		d.set("tax_type", typ)
		d.set("amount_owed", amount)
		g.add(d)
	}
}

var kindWords = map[int][]string{1: {"发明", "invention"}, 2: {"实用新型", "utility_model"}, 3: {"外观设计", "design"}}

func applicationNo(rng *rand.Rand, year, typ int) string {
	digits := fmt.Sprintf("%04d%d%07d", year, typ, rng.IntN(10_000_000))
	c, err := patent.ApplicationCheckChar(digits)
	if err != nil {
		panic(err)
	}
	return digits + "." + string(c)
}

func party(rng *rand.Rand, name, uscc string) string {
	if uscc == "" {
		return name
	}
	if rng.IntN(3) == 0 {
		return name + "（" + uscc + "）"
	}
	return name + "(" + uscc + ")"
}

func (g *gen) patents(rng *rand.Rand, fi int, first time.Time, months int) {
	f := g.firms[fi]
	ind := industries[0]
	for _, x := range industries {
		if x.key == f.Industry {
			ind = x
		}
	}
	n := rng.IntN(5)
	if f.SmallScale {
		n = rng.IntN(2)
	}
	span := int(g.end.Sub(first).Hours() / 24)
	for k := 0; k < n; k++ {
		filed := first.AddDate(0, 0, rng.IntN(max(span-40, 1)))
		typ := []int{1, 1, 2, 2, 2, 3}[rng.IntN(6)]
		appNo := applicationNo(rng, filed.Year(), typ)
		if g.applications[appNo] { // drawn for another patent already: draw again
			redraw := g.rng(f.USCC, "patent", strconv.Itoa(k))
			for g.applications[appNo] {
				appNo = applicationNo(redraw, filed.Year(), typ)
			}
		}
		if g.applications == nil {
			g.applications = map[string]bool{}
		}
		g.applications[appNo] = true
		written := appNo
		if rng.IntN(2) == 0 {
			written = "CN" + appNo
		}
		applicants := []map[string]any{{"name": f.Name, "uscc": quirkUSCC(rng, f.USCC)}}
		switch rng.IntN(6) {
		case 0:
			u := g.unis[rng.IntN(len(g.unis))]
			applicants = append(applicants, map[string]any{"name": u.Name, "uscc": u.USCC})
		case 1:
			if o := g.firms[(fi+1+rng.IntN(len(g.firms)))%len(g.firms)]; o.USCC != f.USCC {
				applicants = append(applicants, map[string]any{"name": o.Name, "uscc": o.USCC})
			}
		case 2:
			applicants = append(applicants, map[string]any{"name": "张" + []string{"伟", "敏", "磊", "静"}[rng.IntN(4)], "uscc": nil})
		}
		var ipc []string
		if typ != 3 {
			for _, j := range rng.Perm(len(ind.ipc))[:1+rng.IntN(2)] {
				ipc = append(ipc, ind.ipc[j])
			}
		}
		title := ind.titles[rng.IntN(len(ind.titles))]
		if typ == 3 {
			title = []string{"智能终端外壳", "控制面板", "包装盒", "检测仪"}[rng.IntN(4)]
		}
		var grant, pub time.Time
		switch typ {
		case 1:
			pub = filed.AddDate(0, 18, 0)
			grant = filed.AddDate(0, 20+rng.IntN(16), rng.IntN(28))
		case 2:
			grant = filed.AddDate(0, 5+rng.IntN(7), rng.IntN(28))
			pub = grant
		case 3:
			grant = filed.AddDate(0, 3+rng.IntN(5), rng.IntN(28))
			pub = grant
		}
		id := "CNIPA-BIB-" + appNo
		base := func(observed time.Time, granted bool) *draft {
			d := &draft{source: patent.SourceBibliographic, id: id, uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: observed}
			d.set("application_no", written)
			d.set("kind", kindWords[typ][rng.IntN(2)])
			d.set("title", title)
			d.set("applicants", applicants)
			d.set("ipc", ipc)
			d.set("filing_date", filed.Format("20060102"))
			if !pub.IsZero() && !pub.After(observed) {
				d.set("publication_date", pub.Format("20060102"))
			} else {
				d.set("publication_date", nil)
			}
			if granted {
				d.set("grant_date", grant.Format("20060102"))
				d.set("status", []string{"granted", "授权"}[rng.IntN(2)])
			} else {
				d.set("grant_date", nil)
				d.set("status", []string{"pending", "审查中"}[rng.IntN(2)])
			}
			return d
		}
		g.add(base(at(rng, filed.AddDate(0, 0, 20+rng.IntN(20))), false))
		grantObserved := at(rng, grant.AddDate(0, 0, 3+rng.IntN(10)))
		if grantObserved.After(g.end) {
			continue
		}
		g.add(base(grantObserved, true))
		g.legal(rng, f, appNo, "GRANT", grant, "授权", "", "", grantObserved)
		if rng.IntN(3) == 0 {
			b := g.banks[rng.IntN(len(g.banks))]
			pd := grant.AddDate(0, 1+rng.IntN(6), rng.IntN(28))
			g.legal(rng, f, appNo, "PLEDGE", pd, "专利权质押合同登记的生效", party(rng, f.Name, f.USCC), party(rng, b.Name, b.USCC), at(rng, pd.AddDate(0, 0, 7)))
			rd := pd.AddDate(1, 0, 0)
			g.legal(rng, f, appNo, "PLEDGE_RELEASE", rd, "专利权质押合同登记的注销", party(rng, f.Name, f.USCC), party(rng, b.Name, b.USCC), at(rng, rd.AddDate(0, 0, 7)))
		} else if typ == 2 && rng.IntN(4) == 0 {
			ld := grant.AddDate(1, 0, 15)
			g.legal(rng, f, appNo, "LAPSE", ld, "未缴年费专利权终止", "", "", at(rng, ld.AddDate(0, 0, 10)))
			rd := ld.AddDate(0, 2, 0)
			g.legal(rng, f, appNo, "RESTORE", rd, "专利权的恢复", "", "", at(rng, rd.AddDate(0, 0, 10)))
		} else if rng.IntN(8) == 0 {
			o := g.firms[(fi+1+rng.IntN(len(g.firms)))%len(g.firms)]
			td := grant.AddDate(0, 3+rng.IntN(6), 0)
			if o.USCC != f.USCC {
				g.legal(rng, f, appNo, "TRANSFER", td, "专利权的转移", party(rng, f.Name, f.USCC), party(rng, o.Name, o.USCC), at(rng, td.AddDate(0, 0, 10)))
			}
		}
	}
}

func (g *gen) legal(rng *rand.Rand, f Firm, appNo, code string, date time.Time, text, from, to string, observed time.Time) {
	d := &draft{source: patent.SourceLegalEvent, id: fmt.Sprintf("CNIPA-LE-%s-%s-%s", appNo, code, date.Format("20060102")),
		uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: observed, csv: true, header: HeaderLegalEvent,
		charset: []string{"utf-8", ""}[rng.IntN(2)]}
	d.names = strings.Split(HeaderLegalEvent, ",")
	d.values = []any{appNo, date.Format("2006-01-02"), code, text, from, to}
	g.add(d)
}

func (g *gen) electricity(rng *rand.Rand, f Firm, city City, first time.Time, months int) {
	acct := g.rng(f.USCC, "electricity")
	account := fmt.Sprintf("%s%08d", city.AreaCode, acct.IntN(100_000_000))
	for g.accounts[account] { // drawn for another firm already: draw again
		account = fmt.Sprintf("%s%08d", city.AreaCode, acct.IntN(100_000_000))
	}
	if g.accounts == nil {
		g.accounts = map[string]bool{}
	}
	g.accounts[account] = true
	base := float64(f.Employees) * (400 + acct.Float64()*1600)
	for k := 0; k < months; k++ {
		m := first.AddDate(0, k, 0)
		rng := g.rng(f.USCC, "electricity", m.Format("200601"))
		kwh := base * seasonal(m.Month()+2) * (0.85 + rng.Float64()*0.3)
		var consumption, unit string
		switch {
		case kwh > 100_000 && rng.IntN(2) == 0:
			consumption, unit = decimal.NewFromFloat(kwh/10_000).Round(4).StringFixed(4), "万千瓦时"
		default:
			consumption, unit = money(round2(kwh), rng.IntN(2) == 0), []string{"kWh", "kWh", "千瓦时", "度"}[rng.IntN(4)]
		}
		peak := decimal.NewFromFloat(kwh / 300).Round(1).String()
		if rng.IntN(5) == 0 {
			peak = ""
		}
		arrears := ""
		switch rng.IntN(10) {
		case 0:
			arrears = money(round2(kwh*0.8*rng.Float64()), true)
		case 1, 2, 3:
			arrears = "0.00"
		}
		d := &draft{source: operations.SourceElectricity, id: fmt.Sprintf("SGCC-%s-%s", account, m.Format("200601")),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, m.AddDate(0, 1, 2+rng.IntN(6))), csv: true,
			header: HeaderElectricity, charset: "utf-8"}
		d.names = strings.Split(HeaderElectricity, ",")
		d.values = []any{account, quirkUSCC(rng, f.USCC), monthForm(rng, m), consumption, unit, peak, arrears}
		g.add(d)
	}
}

func (g *gen) water(rng *rand.Rand, f Firm, first time.Time, months int) {
	base := float64(f.Employees) * (2 + g.rng(f.USCC, "water").Float64()*8)
	for k := 0; k < months; k++ {
		m := first.AddDate(0, k, 0)
		rng := g.rng(f.USCC, "water", m.Format("200601"))
		vol := math.Round(base * (0.8 + rng.Float64()*0.4))
		v := money(decimal.NewFromFloat(vol), true)
		v = strings.TrimSuffix(v, ".00")
		if rng.IntN(8) == 0 {
			v += "吨"
		}
		d := &draft{source: operations.SourceWater, id: fmt.Sprintf("WATER-%s-%s", f.USCC, m.Format("200601")),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, m.AddDate(0, 1, 8+rng.IntN(5)))}
		d.set("uscc", quirkUSCC(rng, f.USCC))
		d.set("period", []string{m.Format("2006-01"), m.Format("200601")}[rng.IntN(2)])
		d.set("volume_m3", v)
		g.add(d)
	}
}

func (g *gen) social(rng *rand.Rand, f Firm, first time.Time, months int) {
	quarterly := hash64(f.USCC, "si")%2 == 0
	p := connectors.MonthPeriod(first.Year(), first.Month())
	if quarterly {
		p = connectors.QuarterPeriod(first.Year(), (int(first.Month())-1)/3+1)
		if p.Start.Before(first) {
			p = p.Next()
		}
	}
	last := first.AddDate(0, months, -1)
	for ; !p.End.After(last); p = p.Next() {
		rng := g.rng(f.USCC, "social", p.String())
		heads := max(1, f.Employees+rng.IntN(11)-5)
		payroll := float64(heads) * (5_000 + rng.Float64()*4_000)
		if p.Kind == connectors.PeriodQuarter {
			payroll *= 3
		}
		var period string
		if p.Kind == connectors.PeriodQuarter {
			q := (int(p.Start.Month())-1)/3 + 1
			period = []string{fmt.Sprintf("%d年第%s季度", p.Start.Year(), cnQuarter[q]), fmt.Sprintf("%dQ%d", p.Start.Year(), q)}[rng.IntN(2)]
		} else {
			period = []string{fmt.Sprintf("%d年%d月", p.Start.Year(), p.Start.Month()), p.Start.Format("2006-01")}[rng.IntN(2)]
		}
		var pay string
		if rng.IntN(2) == 0 {
			pay = decimal.NewFromFloat(payroll/10_000).Round(1).String() + "万元"
		} else {
			pay = money(round2(payroll), true)
		}
		d := &draft{source: operations.SourceSocialInsurance, id: fmt.Sprintf("SI-%s-%s", f.USCC, p.String()),
			uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, p.End.AddDate(0, 0, 10+rng.IntN(10)))}
		d.set("uscc", quirkUSCC(rng, f.USCC))
		d.set("period", period)
		var hc any = heads
		if rng.IntN(4) == 0 {
			hc = strconv.Itoa(heads)
		}
		d.set("insured_headcount", hc)
		d.set("payroll_base_total", pay)
		g.add(d)
	}
}

func (g *gen) customs(rng *rand.Rand, f Firm, first time.Time, months int) {
	for k := 0; k < months; k++ {
		m := first.AddDate(0, k, 0)
		rng := g.rng(f.USCC, "customs", m.Format("200601"))
		type line struct{ dir, cur string }
		lines := []line{{"E", "USD"}}
		if rng.IntN(3) == 0 {
			lines = append(lines, line{"I", "EUR"})
		}
		if rng.IntN(4) == 0 {
			lines = append(lines, line{"I", "CNY"})
		}
		for _, l := range lines {
			amount := f.MonthlySales * (0.1 + rng.Float64()*0.4)
			if l.cur != "CNY" {
				amount /= 7.1
			}
			cur := l.cur
			if rng.IntN(6) == 0 {
				cur = map[string]string{"USD": "502", "EUR": "300", "CNY": "142"}[l.cur]
			}
			d := &draft{source: operations.SourceCustoms, id: fmt.Sprintf("CUS-%s-%s-%s-%s", f.USCC, m.Format("200601"), l.dir, l.cur),
				uscc: envUSCC(rng, f.USCC), firm: f.USCC, observed: at(rng, m.AddDate(0, 1, 15+rng.IntN(8))), csv: true,
				header: HeaderCustoms, b64: true, charset: "gb18030"}
			d.names = strings.Split(HeaderCustoms, ",")
			d.values = []any{quirkUSCC(rng, f.USCC), []string{m.Format("2006-01"), m.Format("200601")}[rng.IntN(2)], l.dir,
				money(round2(amount), true), cur}
			g.add(d)
		}
	}
}
