package connectors

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// lowerSeeds are spellings as providers send them, and tricky ones: case
// mappings outside ASCII (Σ, İ, the Kelvin sign), full-width letters,
// invalid UTF-8, zero-width characters.
var lowerSeeds = []string{"I", "E", "进口", "GRANT", "Pledge Released", "D级", "ｄ级", "USD", "usd", "美元", "502", "Eur", "",
	"-", "N/A", "NULL", "None", "ΣΑ", "İ", "\u212a", "Ａ", "\xff", "a\xc3", "a\u200bb", "ß", "\ufeffUSD", " u s d ",
	"PLEDGE_RELEASE", "pledge-release", "质押注销", "utility model", "INVENTION PATENT", strings.Repeat("A", 40)}

func FuzzAppendLower(f *testing.F) {
	for _, s := range lowerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := appendLower([]byte("x"), s); ok && string(got) != "x"+strings.ToLower(s) {
			t.Fatalf("appendLower(%q) = %q, strings.ToLower %q", s, got[1:], strings.ToLower(s))
		}
	})
}

// enumParseRef is Enum.Parse without the lower-casing on the stack.
func enumParseRef(e *Enum, s string) (string, error) {
	k := enumKey(s)
	if isMissing(k) {
		return "", fmt.Errorf("%w: %s is empty", ErrMissing, e.name)
	}
	if v, ok := e.m[k]; ok {
		return v, nil
	}
	return "", fmt.Errorf("%w: %q is not a %s (want one of %s)", ErrUnknownValue, s, e.name, strings.Join(e.values, ", "))
}

// normalizeCurrencyRef is NormalizeCurrency with strings.ToLower.
func normalizeCurrencyRef(s string) (string, error) {
	f := compact(Fold(s), "")
	if isMissing(f) {
		return "", errEmptyCurrency
	}
	if c, ok := currencies[strings.ToLower(f)]; ok {
		return c, nil
	}
	if u := strings.ToUpper(f); isoCurrencies[u] {
		return u, nil
	}
	return "", fmt.Errorf("%w: currency %q", ErrUnknownUnit, s)
}

func FuzzEnumParse(f *testing.F) {
	// The placeholder spellings test that a placeholder stays missing even
	// when an enumeration spells it.
	e := NewEnum("test", map[string][]string{
		"import": {"I", "进口", "进"}, "export": {"E", "出口"}, "GRANT": {"授权", "granted"},
		"PLEDGE_RELEASE": {"质押注销", "pledge released"}, "A": {"A级"}, "none": {"NA", "Σ"}, "KELVIN": {"\u212a"},
	})
	for _, s := range lowerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := e.Parse(s)
		want, wantErr := enumParseRef(e, s)
		if got != want || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("Parse(%q) = %q, %v; reference %q, %v", s, got, err, want, wantErr)
		}
		gotC, err := NormalizeCurrency(s)
		wantC, wantErr := normalizeCurrencyRef(s)
		if gotC != wantC || !reflect.DeepEqual(err, wantErr) {
			t.Fatalf("NormalizeCurrency(%q) = %q, %v; reference %q, %v", s, gotC, err, wantC, wantErr)
		}
	})
}
