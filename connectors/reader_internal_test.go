package connectors

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
)

// The Optional readers as they were, reading the field twice.
func optionalYuanRef(r *Reader, unit string, names ...string) *decimal.Decimal {
	if r.Text(names...) == "" {
		return nil
	}
	d := r.Yuan(unit, names...)
	return &d
}

func optionalScaledRef(r *Reader, factor decimal.Decimal, names ...string) *decimal.Decimal {
	if r.Text(names...) == "" {
		return nil
	}
	d := r.Scaled(factor, names...)
	return &d
}

func optionalUSCCRef(r *Reader, names ...string) string {
	if r.Text(names...) == "" {
		return ""
	}
	return r.USCC(names...)
}

// FuzzOptionalReaders: the Optional readers' single lookup gives what
// Text followed by the required reader gave: value and reject.
func FuzzOptionalReaders(f *testing.F) {
	for _, s := range []string{"", "-", "无", " ", "1,234.56", "12.5万", "abc", "91350100M000100Y43", "9135 0100 m000 100y43",
		"91350100M000100Y44", "2024-04-15", "2024年4月15日", "2024-02-30", "N/A", "\u3000", "\ufeff", "１２３", "\xff"} {
		f.Add("amount", s, "", false)
		f.Add("金额", s, "万元", true)
	}
	names := []string{"amount", "金额"}
	f.Fuzz(func(t *testing.T, name, value, unit string, failed bool) {
		fields := NewFields([]string{name}, []string{value})
		mk := func() *Reader {
			r := NewReader(fields)
			if failed {
				r.Fail("x", "y", "failed before")
			}
			return r
		}
		show := func(d *decimal.Decimal) string {
			if d == nil {
				return "nil"
			}
			return fmt.Sprintf("%s e%d", d, d.Exponent())
		}
		r1, r2 := mk(), mk()
		if got, want := show(r1.OptionalYuan(unit, names...)), show(optionalYuanRef(r2, unit, names...)); got != want || fmt.Sprint(r1.Err()) != fmt.Sprint(r2.Err()) {
			t.Fatalf("OptionalYuan(%q: %q, %q) = %s, %v; want %s, %v", name, value, unit, got, r1.Err(), want, r2.Err())
		}
		r1, r2 = mk(), mk()
		if got, want := show(r1.OptionalScaled(wan, names...)), show(optionalScaledRef(r2, wan, names...)); got != want || fmt.Sprint(r1.Err()) != fmt.Sprint(r2.Err()) {
			t.Fatalf("OptionalScaled(%q: %q) = %s, %v; want %s, %v", name, value, got, r1.Err(), want, r2.Err())
		}
		r1, r2 = mk(), mk()
		if got, want := r1.OptionalUSCC(names...), optionalUSCCRef(r2, names...); got != want || fmt.Sprint(r1.Err()) != fmt.Sprint(r2.Err()) {
			t.Fatalf("OptionalUSCC(%q: %q) = %q, %v; want %q, %v", name, value, got, r1.Err(), want, r2.Err())
		}
		r1, r2 = mk(), mk()
		got, want := r1.OptionalDate(names...), func() string {
			if r2.Text(names...) == "" {
				return "nil"
			}
			return r2.Date(names...).String()
		}()
		gs := "nil"
		if got != nil {
			gs = got.String()
		}
		if gs != want || fmt.Sprint(r1.Err()) != fmt.Sprint(r2.Err()) {
			t.Fatalf("OptionalDate(%q: %q) = %s, %v; want %s, %v", name, value, gs, r1.Err(), want, r2.Err())
		}
	})
}
