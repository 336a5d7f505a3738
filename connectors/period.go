package connectors

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PeriodKind says whether a period is a calendar month, quarter or year.
type PeriodKind uint8

// Period kinds. Their String values are the Enum8 names used in the tables.
const (
	PeriodMonth   PeriodKind = 1
	PeriodQuarter PeriodKind = 2
	PeriodYear    PeriodKind = 3
)

func (k PeriodKind) String() string {
	switch k {
	case PeriodMonth:
		return "month"
	case PeriodQuarter:
		return "quarter"
	case PeriodYear:
		return "year"
	}
	return "unknown"
}

// Period is a calendar month, quarter or year as an explicit, inclusive
// range of dates: Start is its first day, End its last day, both at
// midnight UTC (the representation ClickHouse Date columns are written from).
type Period struct {
	Kind  PeriodKind
	Start time.Time
	End   time.Time
}

// Dates are only accepted in the range a ClickHouse Date column can hold
// on every server version the project supports.
const (
	MinYear = 1970
	MaxYear = 2105
)

// Date returns midnight UTC of the given day.
func Date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// MonthPeriod returns the calendar month m of year y.
func MonthPeriod(y int, m time.Month) Period {
	// Day 0 of the next month is the last of this one: what
	// start.AddDate(0, 1, -1) computes, without taking start apart again.
	return Period{Kind: PeriodMonth, Start: Date(y, m, 1), End: Date(y, m+1, 0)}
}

// QuarterPeriod returns quarter q (1-4) of year y.
func QuarterPeriod(y, q int) Period {
	m := time.Month(3*(q-1) + 1)
	return Period{Kind: PeriodQuarter, Start: Date(y, m, 1), End: Date(y, m+3, 0)}
}

// YearPeriod returns the calendar year y.
func YearPeriod(y int) Period {
	return Period{Kind: PeriodYear, Start: Date(y, 1, 1), End: Date(y, 12, 31)}
}

// String writes the period as 2024-03, 2024Q1 or 2024.
func (p Period) String() string {
	switch p.Kind {
	case PeriodMonth:
		return p.Start.Format("2006-01")
	case PeriodQuarter:
		return fmt.Sprintf("%dQ%d", p.Start.Year(), (int(p.Start.Month())-1)/3+1)
	case PeriodYear:
		return strconv.Itoa(p.Start.Year())
	}
	return p.Start.Format("2006-01-02") + "/" + p.End.Format("2006-01-02")
}

// Next returns the period of the same kind that follows p.
func (p Period) Next() Period {
	start := p.End.AddDate(0, 0, 1)
	switch p.Kind {
	case PeriodQuarter:
		return Period{Kind: p.Kind, Start: start, End: start.AddDate(0, 3, -1)}
	case PeriodYear:
		return Period{Kind: p.Kind, Start: start, End: start.AddDate(1, 0, -1)}
	}
	return Period{Kind: PeriodMonth, Start: start, End: start.AddDate(0, 1, -1)}
}

var (
	reQuarterQ   = regexp.MustCompile(`^(\d{4})[-/.]?Q([1-4])$`)
	reQuarterQ2  = regexp.MustCompile(`^Q([1-4])[-/.]?(\d{4})$`)
	reQuarterCN  = regexp.MustCompile(`^(\d{4})年?(?:第)?([1-4]|一|二|三|四)季(?:度)?$`)
	reMonthSep   = regexp.MustCompile(`^(\d{4})[-/.](\d{1,2})$`)
	reMonthPlain = regexp.MustCompile(`^(\d{4})(\d{2})$`)
	reMonthCN    = regexp.MustCompile(`^(\d{4})年(\d{1,2}|一|二|三|四|五|六|七|八|九|十|十一|十二)月(?:份)?$`)
	reYear       = regexp.MustCompile(`^(\d{4})(?:年度|年)?$`)

	reDateSep   = regexp.MustCompile(`^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:日)?$`)
	reDatePlain = regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})$`)
	reDateCN    = regexp.MustCompile(`^(\d{4})年(\d{1,2})月(\d{1,2})日?$`)
	reSerial    = regexp.MustCompile(`^(\d{1,7})(?:\.\d+)?$`)
	reTimeOfDay = regexp.MustCompile(`^\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?$`)
)

var cnNumerals = map[string]int{"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10, "十一": 11, "十二": 12}

func atoiCN(s string) int {
	if len(s) <= 9 && digits(s) { // no numeral is digits; below 10^9 nothing overflows
		n := 0
		for i := 0; i < len(s); i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	if n, ok := cnNumerals[s]; ok {
		return n
	}
	n, _ := strconv.Atoi(s)
	return n
}

func checkYear(y int) error {
	if y < MinYear || y > MaxYear {
		return fmt.Errorf("year %d is outside %d-%d", y, MinYear, MaxYear)
	}
	return nil
}

// ParsePeriod parses a month, a quarter or a year:
//
//	month:   2024-03, 2024-3, 2024/03, 202403, 2024年3月, 2024年03月份, 2024年三月
//	quarter: 2024Q1, 2024-Q1, Q1 2024, 2024年第一季度, 2024年1季度, 2024年一季
//	year:    2023, 2023年, 2023年度
//
// Full-width characters, spaces and lower case are accepted. An empty value
// is an error wrapping ErrMissing.
func ParsePeriod(s string) (Period, error) {
	f := strings.ToUpper(compact(Fold(s), ""))
	if isMissing(f) {
		return Period{}, errEmptyPeriod
	}
	// Numeric months, quarters (2024Q1, 2024年第一季度) and years are
	// read by hand, the regular expressions being as slow as the rest of a
	// record; no month pattern matches a quarter or a year these accept.
	if mon := plainMonth(f); mon != "" {
		return plainMonthPeriod(s, f, mon)
	}
	if y, q, ok := splitQuarter(f); ok {
		if err := checkYear(y); err != nil {
			return Period{}, fmt.Errorf("period %q: %w", s, err)
		}
		return QuarterPeriod(y, q), nil
	}
	if ys, ok := splitYear(f); ok {
		y := atoiCN(ys)
		if err := checkYear(y); err != nil {
			return Period{}, fmt.Errorf("period %q: %w", s, err)
		}
		return YearPeriod(y), nil
	}
	return parsePeriod(s, f)
}

// parsePeriod is ParsePeriod of s, folded as f and not a plain month (see
// plainMonth), with regular expressions.
func parsePeriod(s, f string) (Period, error) {
	var p Period
	var y int
	switch {
	case reQuarterQ.MatchString(f):
		m := reQuarterQ.FindStringSubmatch(f)
		y = atoiCN(m[1])
		p = QuarterPeriod(y, atoiCN(m[2]))
	case reQuarterQ2.MatchString(f):
		m := reQuarterQ2.FindStringSubmatch(f)
		y = atoiCN(m[2])
		p = QuarterPeriod(y, atoiCN(m[1]))
	case reQuarterCN.MatchString(f):
		m := reQuarterCN.FindStringSubmatch(f)
		y = atoiCN(m[1])
		p = QuarterPeriod(y, atoiCN(m[2]))
	case reMonthSep.MatchString(f), reMonthPlain.MatchString(f), reMonthCN.MatchString(f):
		m := reMonthSep.FindStringSubmatch(f)
		if m == nil {
			m = reMonthPlain.FindStringSubmatch(f)
		}
		if m == nil {
			m = reMonthCN.FindStringSubmatch(f)
		}
		y = atoiCN(m[1])
		mon := atoiCN(m[2])
		if mon < 1 || mon > 12 {
			return Period{}, fmt.Errorf("period %q: month %d does not exist", s, mon)
		}
		p = MonthPeriod(y, time.Month(mon))
	case reYear.MatchString(f):
		y = atoiCN(reYear.FindStringSubmatch(f)[1])
		p = YearPeriod(y)
	default:
		return Period{}, fmt.Errorf("period %q is not a month (2024-03), quarter (2024Q1) or year", s)
	}
	if err := checkYear(y); err != nil {
		return Period{}, fmt.Errorf("period %q: %w", s, err)
	}
	return p, nil
}

// plainMonthPeriod is ParsePeriod of s, folded as f, a year and a numeric
// month whose digits plainMonth returned as mon.
func plainMonthPeriod(s, f, mon string) (Period, error) {
	y, m := atoiCN(f[:4]), atoiCN(mon)
	if m < 1 || m > 12 {
		return Period{}, fmt.Errorf("period %q: month %d does not exist", s, m)
	}
	if err := checkYear(y); err != nil {
		return Period{}, fmt.Errorf("period %q: %w", s, err)
	}
	return MonthPeriod(y, time.Month(m)), nil
}

// splitQuarter returns the year and quarter of a folded, upper-cased
// period that reQuarterQ, reQuarterQ2 or reQuarterCN matches, as they read
// it; false means the regular expressions decide. FuzzSplitQuarter checks
// that they agree.
func splitQuarter(f string) (y, q int, ok bool) {
	switch {
	case len(f) >= 6 && f[0] == 'Q': // Q1 2024, Q1-2024
		if q = quarterDigit(f[1]); q == 0 {
			return 0, 0, false
		}
		ys := f[2:]
		if len(ys) == 5 && (ys[0] == '-' || ys[0] == '/' || ys[0] == '.') {
			ys = ys[1:]
		}
		if len(ys) != 4 || !digits(ys) {
			return 0, 0, false
		}
		return atoiCN(ys), q, true
	case len(f) < 6 || !digits(f[:4]):
		return 0, 0, false
	}
	y = atoiCN(f[:4])
	rest := f[4:]
	if rest[0] == '-' || rest[0] == '/' || rest[0] == '.' { // 2024-Q1
		rest = rest[1:]
	}
	if len(rest) == 2 && rest[0] == 'Q' { // 2024Q1
		if q = quarterDigit(rest[1]); q == 0 {
			return 0, 0, false
		}
		return y, q, true
	}
	// 2024年第一季度, 2024年1季, 2024第二季度, 2024三季
	rest = strings.TrimPrefix(f[4:], "年")
	rest = strings.TrimPrefix(rest, "第")
	switch {
	case rest == "":
		return 0, 0, false
	case quarterDigit(rest[0]) != 0:
		q, rest = quarterDigit(rest[0]), rest[1:]
	default:
		for i, n := range [...]string{"一", "二", "三", "四"} {
			if strings.HasPrefix(rest, n) {
				q, rest = i+1, rest[len(n):]
				break
			}
		}
		if q == 0 {
			return 0, 0, false
		}
	}
	if rest != "季" && rest != "季度" {
		return 0, 0, false
	}
	return y, q, true
}

// quarterDigit returns the quarter an ASCII digit 1-4 stands for, else 0.
func quarterDigit(c byte) int {
	if c >= '1' && c <= '4' {
		return int(c - '0')
	}
	return 0
}

// splitYear returns the year digits of what reYear matches (2023, 2023年,
// 2023年度), as its submatch; false means it does not match.
func splitYear(f string) (string, bool) {
	if len(f) < 4 || !digits(f[:4]) {
		return "", false
	}
	switch f[4:] {
	case "", "年", "年度":
		return f[:4], true
	}
	return "", false
}

// plainMonth returns the month digits of a folded period written as a
// year and a numeric month (YYYY-MM, YYYY/M, YYYY.MM, YYYYMM, YYYY年M月),
// or "" for anything else, which the regular expressions then read.
func plainMonth(f string) string {
	if len(f) < 6 || !digits(f[:4]) {
		return ""
	}
	rest := f[4:]
	switch {
	case len(rest) == 2 && digits(rest):
		return rest
	case rest[0] == '-' || rest[0] == '/' || rest[0] == '.':
		rest = rest[1:]
	case strings.HasPrefix(rest, "年") && strings.HasSuffix(rest, "月"):
		rest = strings.TrimSuffix(strings.TrimPrefix(rest, "年"), "月")
	default:
		return ""
	}
	if (len(rest) == 1 || len(rest) == 2) && digits(rest) {
		return rest
	}
	return ""
}

// digits reports whether s is all ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ParseYear parses a year: 2023, "2023年", "2023年度". Empty wraps ErrMissing.
func ParseYear(s string) (int, error) {
	f := compact(Fold(s), "")
	if isMissing(f) {
		return 0, errEmptyYear
	}
	ys, ok := splitYear(f)
	if !ok {
		return 0, fmt.Errorf("%q is not a year", s)
	}
	y, _ := strconv.Atoi(ys)
	if err := checkYear(y); err != nil {
		return 0, err
	}
	return y, nil
}

// PeriodFromDates recognizes an inclusive date range as a calendar month,
// quarter or year, as tax returns state their period (所属期起, 所属期止).
func PeriodFromDates(start, end time.Time) (Period, error) {
	y, m, d := start.Date()
	if d == 1 {
		// Each candidate is made only when the one before does not fit.
		first, last := Date(y, m, d), Date(end.Date())
		fits := func(p Period) bool { return p.Start.Equal(first) && p.End.Equal(last) }
		if p := MonthPeriod(y, m); fits(p) {
			return p, nil
		}
		if p := QuarterPeriod(y, (int(m)-1)/3+1); fits(p) {
			return p, nil
		}
		if p := YearPeriod(y); fits(p) {
			return p, nil
		}
	}
	return Period{}, fmt.Errorf("%s to %s is not a calendar month, quarter or year",
		start.Format("2006-01-02"), end.Format("2006-01-02"))
}

// excelEpoch is day 0 of Excel's 1900 date system after its fictitious
// 1900-02-29 (serial 60); serials from 61 on count from here.
var excelEpoch = Date(1899, 12, 30)

// ParseDate parses a calendar date: 2024-04-15, 2024-4-5, 2024/06/30,
// 2024.06.30, 20230115, 2024年4月15日, with an optional time of day that is
// ignored ("2024-04-15 10:30:00", "2024-04-15T10:30:00+08:00"), or an Excel
// serial day number (45397, 45397.5) as legacy CSV exports write dates.
// The result is midnight UTC and lies in MinYear-MaxYear. Empty wraps ErrMissing.
func ParseDate(s string) (time.Time, error) {
	f := Fold(s)
	if isMissing(f) {
		return time.Time{}, errEmptyDate
	}
	if i := strings.IndexAny(f, " T"); i > 0 {
		if !reTimeOfDay.MatchString(strings.TrimSpace(f[i+1:])) {
			return time.Time{}, fmt.Errorf("%q is not a date", s)
		}
		f = f[:i]
	}
	var y, m, d int
	if len(f) == 10 && f[4] == '-' && f[7] == '-' && digits(f[:4]) && digits(f[5:7]) && digits(f[8:]) {
		y, m, d = atoiCN(f[:4]), atoiCN(f[5:7]), atoiCN(f[8:]) // 2024-04-15, the common form
	} else if ys, ms, ds, ok := splitDate(f); ok { // the other forms, without a regexp
		y, m, d = atoiCN(ys), atoiCN(ms), atoiCN(ds)
	} else if mm := reDateSep.FindStringSubmatch(f); mm != nil {
		y, m, d = atoiCN(mm[1]), atoiCN(mm[2]), atoiCN(mm[3])
	} else if mm := reDatePlain.FindStringSubmatch(f); mm != nil {
		y, m, d = atoiCN(mm[1]), atoiCN(mm[2]), atoiCN(mm[3])
	} else if mm := reDateCN.FindStringSubmatch(f); mm != nil {
		y, m, d = atoiCN(mm[1]), atoiCN(mm[2]), atoiCN(mm[3])
	} else if mm := reSerial.FindStringSubmatch(f); mm != nil {
		n, _ := strconv.Atoi(mm[1])
		if n <= 60 {
			return time.Time{}, fmt.Errorf("Excel serial date %q is before March 1900", s)
		}
		t := excelEpoch.AddDate(0, 0, n)
		if err := checkYear(t.Year()); err != nil {
			return time.Time{}, fmt.Errorf("Excel serial date %q: %w", s, err)
		}
		return t, nil
	} else {
		return time.Time{}, fmt.Errorf("%q is not a date (want 2024-04-15, 20240415, 2024/04/15 or an Excel serial)", s)
	}
	t := Date(y, time.Month(m), d)
	if m < 1 || m > 12 || t.Day() != d {
		return time.Time{}, fmt.Errorf("date %q does not exist", s)
	}
	if err := checkYear(y); err != nil {
		return time.Time{}, fmt.Errorf("date %q: %w", s, err)
	}
	return t, nil
}

// splitDate returns the year, month and day digits of f when reDateSep,
// reDatePlain or reDateCN matches it, the first that does, as their
// submatches; false means the regular expressions decide.
// FuzzSplitDate checks both agree.
func splitDate(f string) (y, m, d string, ok bool) {
	if len(f) < 8 || !digits(f[:4]) {
		return "", "", "", false
	}
	y, rest := f[:4], f[4:]
	switch {
	case len(rest) == 4 && digits(rest): // 20240415
		return y, rest[:2], rest[2:], true
	case rest[0] == '-' || rest[0] == '/' || rest[0] == '.': // 2024/4/15, 2024.04.15日
		m, rest, ok = cutDigits(rest[1:], 2)
		if !ok || rest == "" || (rest[0] != '-' && rest[0] != '/' && rest[0] != '.') {
			return "", "", "", false
		}
		d, rest, ok = cutDigits(rest[1:], 2)
		if !ok || (rest != "" && rest != "日") {
			return "", "", "", false
		}
		return y, m, d, true
	case strings.HasPrefix(rest, "年"): // 2024年4月15日
		m, rest, ok = cutDigits(rest[len("年"):], 2)
		if !ok || !strings.HasPrefix(rest, "月") {
			return "", "", "", false
		}
		d, rest, ok = cutDigits(rest[len("月"):], 2)
		if !ok || (rest != "" && rest != "日") {
			return "", "", "", false
		}
		return y, m, d, true
	}
	return "", "", "", false
}

// cutDigits cuts the leading ASCII digits of s, 1 to max of them.
func cutDigits(s string, max int) (digs, rest string, ok bool) {
	n := 0
	for n < len(s) && n <= max && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	if n == 0 || n > max {
		return "", "", false
	}
	return s[:n], s[n:], true
}

// ChinaTime is the providers' time zone (UTC+8, no daylight saving). It is
// fixed so that connectors do not depend on the machine's tz database.
var ChinaTime = time.FixedZone("CST", 8*3600)

// LocalDate returns the calendar day of t in China as a Date.
func LocalDate(t time.Time) time.Time {
	return Date(t.In(ChinaTime).Date())
}
