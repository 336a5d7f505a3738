package tax

import (
	"testing"

	"github.com/shopspring/decimal"
)

var vatFactors = []decimal.Decimal{decimal.NewFromInt(1), decimal.NewFromInt(10_000), decimal.NewFromInt(1_000),
	decimal.NewFromInt(100_000_000), decimal.NewFromInt(0)}

// FuzzVATChecks checks vatChecks' int64 path against vatChecksRef. The
// amounts are mostly near one another, where the tolerance decides.
func FuzzVATChecks(f *testing.F) {
	f.Add(int64(897459719), int64(116669763), int64(73965791), int64(42703972), uint8(0), uint8(0))
	f.Add(int64(100000), int64(17000), int64(0), int64(17000), uint8(0), uint8(1))
	f.Add(int64(100000), int64(17100), int64(0), int64(17100), uint8(1), uint8(2))
	f.Add(int64(0), int64(0), int64(500), int64(0), uint8(0), uint8(3))
	f.Add(int64(999999999999999), int64(1), int64(0), int64(100), uint8(0), uint8(4))
	f.Add(int64(-5), int64(3), int64(9), int64(-2), uint8(3), uint8(5))
	f.Fuzz(func(t *testing.T, s, o, i, p int64, k, mode uint8) {
		switch mode % 6 {
		case 0: // small amounts around each other
			s, o, i, p = s%10_000_000, o%2_000_000, i%2_000_000, p%2_000_000
		case 1: // pay and output derived, off by a little
			s = s % 1_000_000_000_000
			o = s*17/100 + o%20_000
			i = i % 1_000_000_000_000
			p = max(o-i, 0) + p%20_000
		case 2: // at the edge of the fast path
			s, o, i, p = s%1_000_000_000_000_000, o%1_000_000_000_000_000, i%1_000_000_000_000_000, p%1_000_000_000_000_000
		}
		d := func(n int64) decimal.Decimal { return decimal.New(n, -2) }
		if mode%6 == 5 { // other scales take the reference path
			d = func(n int64) decimal.Decimal { return decimal.New(n, -3) }
		}
		factor := vatFactors[int(k)%len(vatFactors)]
		a1, a2 := vatChecks(d(s), d(o), d(i), d(p), factor)
		b1, b2 := vatChecksRef(d(s), d(o), d(i), d(p), factor)
		if a1 != b1 || a2 != b2 {
			t.Fatalf("vatChecks(%d, %d, %d, %d, %s) = %v, %v; reference %v, %v", s, o, i, p, factor, a1, a2, b1, b2)
		}
	})
}
