package connectors

import (
	"regexp"
	"testing"
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
