package connectors_test

import (
	"strings"
	"testing"

	"github.com/firmbridge/firmbridge/connectors"
)

// The seed corpora run as ordinary tests; `go test -fuzz` explores further.

func FuzzNormalizeUSCC(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "91350100m000100y43", "９１３５０１００Ｍ０００１００Ｙ４３",
		"9135 0100-M000 100Y43", "91350100M000100Y44", "", "\xff\xfe", "91110000100000000X", strings.Repeat("9", 18)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := connectors.NormalizeUSCC(s)
		if err != nil {
			return
		}
		if !connectors.ValidUSCC(u) {
			t.Fatalf("NormalizeUSCC(%q) accepted %q, which is not valid", s, u)
		}
		again, err := connectors.NormalizeUSCC(u)
		if err != nil || again != u {
			t.Fatalf("NormalizeUSCC is not idempotent on %q: %q, %v", u, again, err)
		}
	})
}

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"1,234.56", "12.5万", "98.6万元", "1.2亿元", "3,120,500.00", "元", "", "１２３", "(1.00)",
		"-0.01", "1.234", "9999999999999999.99", ".5", "5.", "1,,000", "¥1"} {
		f.Add(s, "")
		f.Add(s, "万元")
	}
	f.Fuzz(func(t *testing.T, s, unit string) {
		v, err := connectors.ParseYuan(s, unit)
		if err != nil {
			return
		}
		if !v.Equal(v.Round(2)) {
			t.Fatalf("ParseYuan(%q, %q) = %s has more than two decimals", s, unit, v)
		}
		if len(v.Abs().Truncate(0).String()) > 16 {
			t.Fatalf("ParseYuan(%q, %q) = %s does not fit Decimal(18,2)", s, unit, v)
		}
	})
}

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"2024-03", "202403", "2024年3月", "2024Q1", "2024年第一季度", "2023年", "2024-13", "", "Q4 2024", "2024年十二月"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := connectors.ParsePeriod(s)
		if err != nil {
			return
		}
		if p.End.Before(p.Start) || p.Start.Day() != 1 || p.End.AddDate(0, 0, 1).Day() != 1 {
			t.Fatalf("ParsePeriod(%q) = %s..%s is not a calendar period", s, p.Start, p.End)
		}
		again, err := connectors.ParsePeriod(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePeriod(%q).String() = %q does not parse back: %v, %v", s, p.String(), again, err)
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2024-04-15", "20230115", "2024/06/30", "45397", "2024年4月15日", "2024-02-30", "", "9999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := connectors.ParseDate(s)
		if err != nil {
			return
		}
		if d.Year() < connectors.MinYear || d.Year() > connectors.MaxYear || d.Hour() != 0 {
			t.Fatalf("ParseDate(%q) = %v is outside the Date range or not midnight", s, d)
		}
	})
}
