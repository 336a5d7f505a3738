package connectors

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// The fast paths of this package against their reference paths, on
// random inputs: where a fast path answers, it must answer exactly what
// the reference answers (same value, same decimal exponent, same fields).

// refFactors are the unit factors connectors pass, and a few others.
var refFactors = []decimal.Decimal{one, thousnd, wan, million, qianwan, yi, decimal.NewFromInt(1_000),
	decimal.NewFromInt(7), decimal.RequireFromString("0.5"), decimal.RequireFromString("1e9"), decimal.Zero}

func FuzzAmountFastPath(f *testing.F) {
	for _, s := range []string{"1,234.56", "12.5", "98.6", "1.2", "3,120,500.00", "", "123", "(1.00)", "-0.01",
		"1.234", "9999999999999999.99", "10000000000000000", ".5", "5.", "1,,000", "-0", "(0)", "−3.10", "+7",
		"0.001", "0.0010", "123456789012345678", "1234567890123456789", "1,234,567", "12,34", "1.2.3", "1,234.5,6",
		",123", "123,", "00000000000000000001.5", "0.000000000000000001"} {
		f.Add(s, uint8(0), uint8(0))
		f.Add(s, uint8(2), uint8(1))
	}
	f.Fuzz(func(t *testing.T, s string, i1, i2 uint8) {
		f1, f2 := refFactors[int(i1)%len(refFactors)], refFactors[int(i2)%len(refFactors)]
		fen, ok := fenFast(s, f1, f2)
		n, err := parseNumber(s)
		var want decimal.Decimal
		if err == nil {
			want, err = toScale2(mulBy(mulBy(n, f1), f2), s)
		}
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fenFast(%q, %s, %s) = %d, the reference rejects it: %v", s, f1, f2, fen, err)
		}
		got := decimal.New(fen, -2)
		if !got.Equal(want) || got.Exponent() != want.Exponent() || got.String() != want.String() {
			t.Fatalf("fenFast(%q, %s, %s) = %s (exp %d), reference %s (exp %d)", s, f1, f2, got, got.Exponent(), want, want.Exponent())
		}
	})
}

// ParseYuan and ParseScaled's shortcut for plain figures gives what the
// general path gives, value, exponent and error.
func FuzzPlainAmountShortcut(f *testing.F) {
	for _, s := range []string{"1,234.56", "-", "--", "-0.01", "1.2.3", ",", ".", "-,", "12", "0.001", "1,,0", "99999999999999999999", "-.5"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(2))
	}
	units := []string{"", "元", "万元", "亿", "千元"}
	f.Fuzz(func(t *testing.T, s string, u uint8) {
		unit := units[int(u)%len(units)]
		factor, err := ParseUnit(unit)
		if err != nil {
			t.Fatal(err)
		}
		got, gotErr := ParseYuan(s, unit)
		want, wantErr := parseYuan(s, unit, factor)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || got.String() != want.String() || got.Exponent() != want.Exponent() {
			t.Fatalf("ParseYuan(%q, %q) = %s (exp %d), %v; general path %s (exp %d), %v", s, unit, got, got.Exponent(), gotErr, want, want.Exponent(), wantErr)
		}
		if plainAmount(s) {
			f1, m1, err1 := decimalText(s)
			if err1 != nil || f1 != s || !m1.Equal(one) {
				t.Fatalf("decimalText(%q) = %q, %s, %v; want it as it is", s, f1, m1, err1)
			}
			if f2 := strings.ToLower(compact(Fold(s), "")); f2 != s || isMissing(f2) {
				t.Fatalf("plain %q folds to %q (missing %v)", s, f2, isMissing(f2))
			}
		}
	})
}

// TestAmountFastPath_Taken checks that the common forms do take the fast path.
func TestAmountFastPath_Taken(t *testing.T) {
	for _, s := range []string{"1,234.56", "446,913.45", "46.0970", "17743.00", "0", "-0.01", "(12.50)", "245.7", ".5", "5."} {
		if _, ok := fenFast(s, one, wan); !ok {
			t.Errorf("fenFast(%q) took the slow path", s)
		}
	}
}

func FuzzCanonicalUSCC(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "91350100m000100y43", "91350100M000100Y44", "", "\xff\xfe",
		"91110000100000000X", strings.Repeat("9", 18), "91350100M000100Y4", "91350100M000100YI3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := canonicalUSCC(s), validateUSCC(s) == nil; got != want {
			t.Fatalf("canonicalUSCC(%q) = %v, validateUSCC says %v", s, got, want)
		}
	})
}

func FuzzSplitQuotedCSV(f *testing.F) {
	for _, s := range []string{`a,"1,234.56",b`, `"a""b",c`, `"",""`, `a,`, `,`, `"a`, `a"b,c`, `"a"b,c`, `"a" ,b`,
		`""""`, `"""`, `x,"y"`, `"1,2","3,4",`, `059106106521,9135 0100 NK1019 3368,2024-10,"446,913.45",千瓦时,1489.7,`,
		"a,\"b\xff\",c", ` "a",b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\r\n") {
			return
		}
		got, ok := appendQuotedCSV(nil, s)
		if !ok {
			return
		}
		r := csv.NewReader(bufio.NewReader(strings.NewReader(s)))
		r.FieldsPerRecord = -1
		r.LazyQuotes = true
		want, err := r.Read()
		if err != nil {
			if strings.TrimSpace(s) == "" {
				return // readCSVLine refuses an empty line before splitting
			}
			t.Fatalf("appendQuotedCSV(%q) = %q, encoding/csv fails: %v", s, got, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("appendQuotedCSV(%q) = %q, encoding/csv reads %q", s, got, want)
		}
	})
}

// countRef is Reader.Count's parsing without its fast path.
func countRef(f string) (uint64, bool) {
	d, err := parseNumber(strings.TrimSuffix(f, ".0"))
	if err != nil || !d.IsInteger() || d.IsNegative() || d.GreaterThan(decimal.NewFromInt(1<<32-1)) {
		return 0, false
	}
	n, _ := strconv.ParseUint(d.String(), 10, 64)
	return n, true
}

func FuzzCountFastPath(f *testing.F) {
	for _, s := range []string{"86", "086", "0", "999999999", "4294967295", "4294967296", "1,024", "86.0", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := NewReader(NewFields([]string{"n"}, []string{s}))
		got := r.Count("n")
		f := strings.TrimSuffix(compact(Fold(s), ""), "人")
		if isMissing(f) {
			if r.Err() == nil {
				t.Fatalf("Count(%q) accepted a missing value", s)
			}
			return
		}
		want, ok := countRef(f)
		if ok != (r.Err() == nil) || got != want {
			t.Fatalf("Count(%q) = %d, %v; reference %d, %v", s, got, r.Err(), want, ok)
		}
	})
}

func FuzzUnquoteSimple(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\"b"`, `"\"1,234.56\",x"`, `"\\"`, `"\u00e9\n\t\/"`, `"\ud800"`, `"\u12"`,
		`"a\"`, `"\x"`, "\"\t\"", "\"\xff\"", `""`, `"`, `"\u0000"`, `"\uFFFF"`, `"a"b"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := unquoteSimple(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("unquoteSimple(%q) = %q, encoding/json fails: %v", raw, got, err)
		}
		if got != want {
			t.Fatalf("unquoteSimple(%q) = %q, encoding/json has %q", raw, got, want)
		}
	})
}

// plainJSONRef is plainJSON one byte at a time.
func plainJSONRef(s []byte) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20:
			return false
		case c == '\\' && i+2 < len(s) && s[i+1] == 'u' && (s[i+2] == 'd' || s[i+2] == 'D'):
			return false
		}
	}
	return utf8.Valid(s)
}

func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{``, `{"a":"b"}`, "{\"a\":\"\x1f\"}", "0123456\x00", "01234567\x1f", `"\uD800"`, `\\ud`, `\u`, `\ud`,
		"\x7f\x80\x20\x1f\x21", "é\x19", "abcdefgh\tijklmnop", `{"k":"\u00e9","l":"\uDC00x"}`, "\xff\xfe", "        \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		want := plainJSONRef(s)
		if got := plainJSON(s); got != want {
			t.Fatalf("plainJSON(%q) = %v, one byte at a time %v", s, got, want)
		}
		if got := plainJSON(string(s)); got != want {
			t.Fatalf("plainJSON(string %q) = %v, one byte at a time %v", s, got, want)
		}
	})
}

// The literals unquoteSimple is for: CSV lines with quoted fields and
// other plain escapes.
func TestUnquoteSimple_Taken(t *testing.T) {
	for raw, want := range map[string]string{`"\"1,234.56\",x"`: `"1,234.56",x`, `"\u00e9\n\t\/"`: "é\n\t/", `"a"`: "a", `""`: ""} {
		if got, ok := unquoteSimple([]byte(raw)); !ok || got != want {
			t.Errorf("unquoteSimple(%s) = %q, %v; want %q", raw, got, ok, want)
		}
	}
}

// NormalizeUSCC's shortcuts give what its general path gives, code and error.
func FuzzNormalizeUSCCFastPath(f *testing.F) {
	for _, s := range []string{"91350100M000100Y43", "9135 0100 M000 100Y43", "9135-0100-m000-100y43", " 91350100M000100Y43\t",
		"91350100_M000100Y43", "９１３５０１００Ｍ０００１００Ｙ４３", "\ufeff91350100M000100Y43", "9135\u200b0100M000100Y43",
		"91350100M000100Y44", "91350100M000100Y4", "91350100M000100Y433", "", " ", "-", "\xff\xfe", "9135\x000100M000100Y43",
		"91350100M000100YI3", "9135\u30000100M000100Y43", "9135\u00a00100M000100Y43", "9135\x850100M000100Y43",
		"91110000100000000X", "91110000100000000x", "9111 0000 1000 0000 0x", "九1350100M000100Y43",
		"９１３５\u3000０１００ｍ０００１００ｙ４３", "９１３５－0100M000100Y43", "９１３５＿0100M000100Y43", "\u30009135 0100M000100Y43\u3000",
		"9135\u20140100M000100Y43", "９１３５０１００Ｍ０００１００Ｙ４", "９１３５０１００Ｍ０００１００Ｙ４３３", "9135０１００M000100Y4\xbc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := NormalizeUSCC(s)
		want, wantErr := normalizeUSCCSlow(s)
		if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("NormalizeUSCC(%q) = %q, %v; general path %q, %v", s, got, gotErr, want, wantErr)
		}
		if u, ok := asciiUSCC(s); ok && (u != want || wantErr != nil) {
			t.Fatalf("asciiUSCC(%q) = %q; general path %q, %v", s, u, want, wantErr)
		}
	})
}
