package schema

import (
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// seriesMonths is the span of every trend in a profile.
const seriesMonths = 24

// period is one filed period and its value.
type period struct {
	start, end time.Time
	value      decimal.Decimal
}

// monthIndex numbers calendar months so that consecutive months differ by one.
func monthIndex(t time.Time) int { return t.Year()*12 + int(t.Month()) - 1 }

func monthStart(i int) time.Time { return time.Date(i/12, time.Month(i%12+1), 1, 0, 0, 0, 0, time.UTC) }

func monthLabel(i int) string { return monthStart(i).Format(monthLayout) }

// periodLabel names a period: 2024-03 for a month, 2024Q1 for a quarter,
// start..end otherwise.
func periodLabel(start, end time.Time) string {
	if start.Day() == 1 && end.Equal(start.AddDate(0, 1, -1)) {
		return start.Format(monthLayout)
	}
	if start.Day() == 1 && (start.Month()-1)%3 == 0 && end.Equal(start.AddDate(0, 3, -1)) {
		return fmt.Sprintf("%dQ%d", start.Year(), (int(start.Month())-1)/3+1)
	}
	return start.Format(dateLayout) + ".." + end.Format(dateLayout)
}

// floorMonth is the first month that starts on or after floor (a very
// early month when floor is zero).
func floorMonth(floor time.Time) int {
	if floor.IsZero() {
		return 0
	}
	m := monthIndex(floor)
	if floor.Day() != 1 {
		m++
	}
	return m
}

// latestMonth is the month of the newest period end, -1 without periods.
func latestMonth(ps []period) int {
	anchor := -1
	for _, p := range ps {
		anchor = max(anchor, monthIndex(p.end))
	}
	return anchor
}

// window is the months a trend covers, inclusive.
type window struct{ first, last int }

func windowAt(anchor, floor int) window {
	return window{first: max(anchor-seriesMonths+1, floor), last: anchor}
}

// periods keeps the periods that lie wholly inside w, oldest first.
func (w window) periods(ps []period) []period {
	var out []period
	for _, p := range ps {
		if monthIndex(p.start) >= w.first && monthIndex(p.end) <= w.last {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].start.Equal(out[j].start) {
			return out[i].start.Before(out[j].start)
		}
		return out[i].end.Before(out[j].end)
	})
	return out
}

// missing lists the months of w that no period covers.
func (w window) missing(ps []period) []string {
	covered := map[int]bool{}
	for _, p := range ps {
		for m := monthIndex(p.start); m <= monthIndex(p.end); m++ {
			covered[m] = true
		}
	}
	out := []string{}
	for m := w.first; m <= w.last; m++ {
		if !covered[m] {
			out = append(out, monthLabel(m))
		}
	}
	return out
}

// halves sums the periods lying wholly in the newest 12 months up to
// anchor and in the 12 before, with the months each half covers.
type halves struct {
	last, prior               decimal.Decimal
	lastCovered, priorCovered int
	straddle                  bool
	empty                     bool
}

func split(ps []period, anchor, floor int) halves {
	h := halves{empty: len(ps) == 0}
	lastMonths, priorMonths := map[int]bool{}, map[int]bool{}
	for _, p := range ps {
		s, e := monthIndex(p.start), monthIndex(p.end)
		if s < floor || e > anchor || s <= anchor-seriesMonths {
			continue
		}
		switch {
		case s > anchor-12:
			h.last = h.last.Add(p.value)
			for m := s; m <= e; m++ {
				lastMonths[m] = true
			}
		case e <= anchor-12:
			h.prior = h.prior.Add(p.value)
			for m := s; m <= e; m++ {
				priorMonths[m] = true
			}
		default:
			h.straddle = true
		}
	}
	h.lastCovered, h.priorCovered = len(lastMonths), len(priorMonths)
	return h
}

// growth is last/prior − 1, or why it cannot be given.
func (h halves) growth() (*string, string) {
	switch {
	case h.empty:
		return nil, firmbridge.GrowthNoData
	case h.straddle:
		return nil, firmbridge.GrowthPeriodsStraddle
	case h.lastCovered < 12 || h.priorCovered < 12:
		return nil, firmbridge.GrowthIncomplete
	case h.prior.IsZero():
		return nil, firmbridge.GrowthZeroBase
	}
	return ratio(h.last.DivRound(h.prior, 12).Sub(decimal.NewFromInt(1))), ""
}

// growthValue is growth as a decimal, for comparisons.
func (h halves) growthValue() (decimal.Decimal, bool) {
	g, _ := h.growth()
	if g == nil {
		return decimal.Zero, false
	}
	return h.last.DivRound(h.prior, 12).Sub(decimal.NewFromInt(1)), true
}

// buildSeries makes the trend of ps over the 24 months ending at anchor
// (at the newest period when anchor < 0), starting no earlier than the
// floor's month.
func buildSeries(unit string, ps []period, anchor int, floor time.Time) (firmbridge.Series, halves) {
	s := firmbridge.Series{Unit: unit, Points: []firmbridge.SeriesPoint{}, MissingMonths: []string{},
		Last12: yuan(decimal.Zero), Prior12: yuan(decimal.Zero)}
	if anchor < 0 {
		anchor = latestMonth(ps)
	}
	if anchor < 0 {
		s.YoYUnavailable = firmbridge.GrowthNoData
		return s, halves{empty: true}
	}
	fm := floorMonth(floor)
	w := windowAt(anchor, fm)
	in := w.periods(ps)
	s.From, s.To = monthLabel(w.first), monthLabel(w.last)
	for _, p := range in {
		s.Points = append(s.Points, firmbridge.SeriesPoint{Period: periodLabel(p.start, p.end),
			PeriodStart: p.start.Format(dateLayout), PeriodEnd: p.end.Format(dateLayout), Value: yuan(p.value)})
	}
	s.MissingMonths = w.missing(in)
	h := split(in, anchor, fm)
	s.Last12, s.Prior12 = yuan(h.last), yuan(h.prior)
	s.Last12Covered, s.Prior12Covered = h.lastCovered, h.priorCovered
	s.YoYGrowth, s.YoYUnavailable = h.growth()
	return s, h
}

// monthly sums values per calendar month (several grid accounts, several
// declarations) into month periods.
func monthly(months []time.Time, values []decimal.Decimal) []period {
	sums := map[int]decimal.Decimal{}
	for i, m := range months {
		k := monthIndex(m)
		sums[k] = sums[k].Add(values[i])
	}
	var out []period
	for k, v := range sums {
		start := monthStart(k)
		out = append(out, period{start: start, end: start.AddDate(0, 1, -1), value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}
