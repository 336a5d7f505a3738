package patent

import (
	"testing"
)

func FuzzSplitApplicationNo(f *testing.F) {
	for _, s := range []string{"202310123456.6", "2023101234566", "20231012345X", "202310123456X", "89100123.4", "891001234",
		"8910012.34", "202310123456..6", "202310123456.x", "202310123456,6", "", "X", "2023101234567.8", "12345678.X",
		"１２３", "202310123456.66", "2023101234.56"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		digs, check, ok := splitApplicationNo(s)
		m := reAppNo.FindStringSubmatch(s)
		if ok && (m == nil || m[1] != digs || m[2][0] != check) {
			t.Fatalf("splitApplicationNo(%q) = %q %c; regexp %q", s, digs, check, m)
		}
		if !ok && m != nil {
			t.Fatalf("splitApplicationNo(%q) misses what the regexp reads: %q", s, m)
		}
	})
}

func FuzzSplitIPC(f *testing.F) {
	for _, s := range []string{"H01L33/48", "G02B6/42", "H01M10/42", "A01B1/00", "H01M0010/420000", "H01M10/4200000", "I01M10/42",
		"H1M10/42", "H01m10/42", "H01M/42", "H01M12345/42", "H01M10/4", "H01M10//42", "H01M10/42/1", "H01M0010420000", "", "H",
		"H01M10/42)", "H01M１0/42", "H01M10/4２"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, ok := splitIPC(s)
		want := reIPC.FindStringSubmatch(s)
		if ok && (want == nil || [5]string(want[1:]) != m) {
			t.Fatalf("splitIPC(%q) = %q; regexp %q", s, m, want)
		}
		if !ok && want != nil {
			t.Fatalf("splitIPC(%q) misses what the regexp reads: %q", s, want)
		}
	})
}

func FuzzSplitTrailingBracket(f *testing.F) {
	for _, s := range []string{"某某银行股份有限公司(91110000100000000X)", "某某科技（福州）有限公司", "A(B)(C)", "A(B(C))", "(X)", "()", "A()",
		")", "(", "A(B", "AB)", "A)B(C)", "A(B)C", "A\n(B)", "A(B\n)", "A(B)\n", "\xff(\xfe)", "A（B）", "A(B))", "A((B)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		before, inner, ok := splitTrailingBracket(s)
		m := reTrailingBracket.FindStringSubmatch(s)
		if ok != (m != nil) || (ok && (before != m[1] || inner != m[2])) {
			t.Fatalf("splitTrailingBracket(%q) = %q, %q, %v; the regular expression reads %q", s, before, inner, ok, m)
		}
	})
}
