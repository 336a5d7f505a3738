package connectors

import "testing"

// FuzzFold_FastPathAgrees: the fast path of Fold never changes its result.
func FuzzFold_FastPathAgrees(f *testing.F) {
	for _, s := range []string{"", "abc", " a", "a ", "a  b", "福州 某某", "ＡＢＣ１２３", "a\u3000b", "\ufeffx", "x\u200by",
		"a\tb", "\x7f", "\xff", "半角ｶﾅ", "A-B_C", "91350100M000100Y43", "1,234.56万元"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Fold(s), foldSlow(s); got != want {
			t.Errorf("Fold(%q) = %q, want %q", s, got, want)
		}
	})
}

// FuzzFoldedBytes: the byte-wise checks of folded and foldedLower agree
// with their rune-wise references.
func FuzzFoldedBytes(f *testing.F) {
	for _, s := range []string{"", "abc", " a", "a ", "a  b", "福州 某某", "ＡＢＣ１２３", "a\u3000b", "\ufeffx", "x\u200by", "a\tb",
		"\x7f", "\xff", "半角ｶﾅ", "91350100M000100Y43", "统一社会信用代码", "纳税人名称 X", "\u4e00\u9fff\u4dff\ua000", "\xe4\xb8",
		"\xe4\xb7\xbf", "\xe9\xbf\xc0", "\xed\xa0\x80", "uscc", "USCC", "Ünïcode", "ǅ", "İ", "a\u00a0b", "福 州 ", " 福州"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := folded(s), foldedRef(s); got != want {
			t.Errorf("folded(%q) = %v, foldedRef says %v", s, got, want)
		}
		if got, want := foldedLower(s), foldedLowerRef(s); got != want {
			t.Errorf("foldedLower(%q) = %v, foldedLowerRef says %v", s, got, want)
		}
	})
}

func FuzzIsMissing(f *testing.F) {
	for _, s := range []string{"", "-", "--", "---", "—", "——", "/", "无", "空", "null", "NULL", "Nil", "NONE", "N/A", "na", "NA", "nA",
		"n／a", "0", "2024Q1", "CNY", "————", "\xff", "İ", "NULl\x00", "nulls", "-—"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isMissing(s), isMissingRef(s); got != want {
			t.Errorf("isMissing(%q) = %v, isMissingRef says %v", s, got, want)
		}
	})
}
