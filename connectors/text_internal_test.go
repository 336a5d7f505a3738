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
