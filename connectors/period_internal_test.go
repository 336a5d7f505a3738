package connectors

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzPlainMonth checks the regexp-free month path against the regular
// expressions it stands in for: whatever it accepts, they read the same.
func FuzzPlainMonth(f *testing.F) {
	for _, s := range []string{"2024-03", "2024/3", "2024.12", "202403", "2024年3月", "2024年03月", "2024-003", "20243", "2024Q1", "2024年3", "２０２４-03"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mon := plainMonth(s)
		if mon == "" {
			return
		}
		var m []string
		for _, re := range []*regexp.Regexp{reMonthSep, reMonthPlain, reMonthCN} {
			if m = re.FindStringSubmatch(s); m != nil {
				break
			}
		}
		if m == nil || m[1] != s[:4] || atoiCN(m[2]) != atoiCN(mon) {
			t.Fatalf("plainMonth(%q) = %q, the regular expressions read %q", s, mon, m)
		}
		if reQuarterQ.MatchString(s) || reQuarterQ2.MatchString(s) || reQuarterCN.MatchString(s) {
			t.Fatalf("plainMonth(%q) = %q, but it is a quarter", s, mon)
		}
	})
}

var periodSeeds = []string{"2024Q1", "2024-Q4", "2024/q2", "2024.Q3", "Q1 2024", "Q1-2024", "q42024", "2024Q5", "2024Q0", "2024QQ1",
	"2024年第一季度", "2024年第四季", "2024年1季度", "2024年一季", "2024第二季度", "2024三季", "20241季", "2024年第五季度", "2024年第十季度",
	"2024年第一季度度", "2024年季度", "2024年第季度", "２０２４年第一季度", "2024年 第一 季度", "2024年第一季度\u200b", "\ufeff2024Q1",
	"2023", "2023年", "2023年度", "2023年年", "1969年", "2106", "2024-03", "202403", "2024年3月", "2024年三月", "2024年十二月份",
	"", "-", "无", "Q", "2024-", "2024年", "１９９９", "2024Ｑ1", "Q1 ２０２４", "2024-Q1-", "2024--Q1", "\xff2024Q1", "2024Q1\xff"}

// FuzzSplitQuarter checks the hand-written quarter and year readers
// against the regular expressions they stand in for.
func FuzzSplitQuarter(f *testing.F) {
	for _, s := range periodSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, q, ok := splitQuarter(s)
		var m []string
		var wy, wq int
		if m = reQuarterQ.FindStringSubmatch(s); m != nil {
			wy, wq = atoiCN(m[1]), atoiCN(m[2])
		} else if m = reQuarterQ2.FindStringSubmatch(s); m != nil {
			wy, wq = atoiCN(m[2]), atoiCN(m[1])
		} else if m = reQuarterCN.FindStringSubmatch(s); m != nil {
			wy, wq = atoiCN(m[1]), atoiCN(m[2])
		}
		if ok != (m != nil) || y != wy || q != wq {
			t.Fatalf("splitQuarter(%q) = %d, %d, %v; the regular expressions read %q", s, y, q, ok, m)
		}
		ys, ok := splitYear(s)
		m = reYear.FindStringSubmatch(s)
		if ok != (m != nil) || (ok && ys != m[1]) {
			t.Fatalf("splitYear(%q) = %q, %v; reYear reads %q", s, ys, ok, m)
		}
	})
}

// FuzzParsePeriodFastPath checks ParsePeriod against its regexp-only path:
// same period, same error.
func FuzzParsePeriodFastPath(f *testing.F) {
	for _, s := range periodSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := ParsePeriod(s)
		want, wantErr := parsePeriodRef(s)
		if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("ParsePeriod(%q) = %v, %v; regexp path %v, %v", s, got, gotErr, want, wantErr)
		}
	})
}

// FuzzPeriodEnds: the last day of a month or quarter, as day 0 of the
// next, is what AddDate from its first day gives, also for months out of
// range (normalized, as time.Date does).
func FuzzPeriodEnds(f *testing.F) {
	for _, c := range [][2]int{{2024, 2}, {2023, 2}, {1900, 2}, {2000, 2}, {2024, 12}, {2024, 13}, {2024, 0}, {2024, -25}, {1970, 1}, {2105, 12}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, y, m int) {
		y, m = y%100000, m%1000
		start := Date(y, time.Month(m), 1)
		if got, want := MonthPeriod(y, time.Month(m)), (Period{Kind: PeriodMonth, Start: start, End: start.AddDate(0, 1, -1)}); got != want {
			t.Fatalf("MonthPeriod(%d, %d) = %v, want %v", y, m, got, want)
		}
		q := m%4 + 1
		if q < 1 {
			q += 4
		}
		qs := Date(y, time.Month(3*(q-1)+1), 1)
		if got, want := QuarterPeriod(y, q), (Period{Kind: PeriodQuarter, Start: qs, End: qs.AddDate(0, 3, -1)}); got != want {
			t.Fatalf("QuarterPeriod(%d, %d) = %v, want %v", y, q, got, want)
		}
	})
}

// periodFromDatesRef is PeriodFromDates as it was, making every candidate.
func periodFromDatesRef(start, end time.Time) (Period, error) {
	y, m, d := start.Date()
	if d == 1 {
		for _, p := range []Period{MonthPeriod(y, m), QuarterPeriod(y, (int(m)-1)/3+1), YearPeriod(y)} {
			if p.Start.Equal(Date(y, m, d)) && p.End.Equal(Date(end.Date())) {
				return p, nil
			}
		}
	}
	return Period{}, fmt.Errorf("%s to %s is not a calendar month, quarter or year",
		start.Format("2006-01-02"), end.Format("2006-01-02"))
}

func FuzzPeriodFromDates(f *testing.F) {
	f.Add(int64(1704067200), int64(1711843200), int64(0)) // 2024-01-01 to 2024-03-31
	f.Add(int64(1704067200), int64(1706659200), int64(3600))
	f.Add(int64(1704067200), int64(1735603200), int64(-8*3600))
	f.Add(int64(1706745600), int64(1709164800), int64(0))
	f.Fuzz(func(t *testing.T, a, b, off int64) {
		loc := time.FixedZone("z", int(off%(24*3600)))
		start, end := time.Unix(a%(1<<40), 0).In(loc), time.Unix(b%(1<<40), 0).In(loc)
		got, gotErr := PeriodFromDates(start, end)
		want, wantErr := periodFromDatesRef(start, end)
		if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("PeriodFromDates(%s, %s) = %v, %v; want %v, %v", start, end, got, gotErr, want, wantErr)
		}
	})
}

// parsePeriodRef is ParsePeriod without the hand-written quarters and
// years: plain months by hand, the rest by regular expressions.
func parsePeriodRef(s string) (Period, error) {
	f := strings.ToUpper(compact(Fold(s), ""))
	if isMissing(f) {
		return Period{}, errEmptyPeriod
	}
	if mon := plainMonth(f); mon != "" {
		return plainMonthPeriod(s, f, mon)
	}
	return parsePeriod(s, f)
}
