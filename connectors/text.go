package connectors

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// Fold returns s with full-width forms mapped to their half-width
// equivalents (ＡＢＣ１２３ → ABC123, the ideographic space → space),
// byte-order marks and zero-width characters removed, surrounding white
// space trimmed and inner runs of white space collapsed to one space.
// It is the first step of every field clean-up.
func Fold(s string) string {
	// Most fields are already folded; skipping the transformer for them
	// made end-to-end ingest about 45% faster (docs/BENCHMARKS.md).
	if folded(s) {
		return s
	}
	return foldSlow(s)
}

// foldSlow is Fold without the fast path.
func foldSlow(s string) string {
	s = width.Fold.String(s)
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case r == '\ufeff' || r == '\u200b' || r == '\u200c' || r == '\u200d' || r == '\u2060':
			continue
		case unicode.IsSpace(r):
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// CleanName normalizes a firm or party name: Fold, then round brackets
// written as the registration authority writes them in Chinese names,
// full-width (（福州）). English names keep their single spaces.
func CleanName(s string) string {
	s = Fold(s)
	if !strings.ContainsAny(s, "()") {
		return s
	}
	return fullWidthBrackets.Replace(s)
}

// fullWidthBrackets is built once: a Replacer is safe for concurrent use,
// and building one per name was most of CleanName's cost.
var fullWidthBrackets = strings.NewReplacer("(", "（", ")", "）")

// compact removes every white space character and the given runes from s.
func compact(s string, drop string) string {
	// Nearly every value is printable ASCII with nothing to remove.
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		c := s[i]
		clean = c > ' ' && c < 0x7f && strings.IndexByte(drop, c) < 0
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || strings.ContainsRune(drop, r) {
			return -1
		}
		return r
	}, s)
}

// isMissing reports whether a folded value stands for "no value": the
// empty string and the placeholders legacy exports use for it.
func isMissing(s string) bool {
	if len(s) > len("——") { // the longest of the words below
		return false
	}
	// ASCII is lower-cased on the stack: strings.ToLower allocates for
	// every upper-case value (2024Q1, CNY).
	var buf [len("——")]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return isMissingRef(s)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(s)]) {
	case "", "-", "--", "---", "/", "null", "nil", "none", "n/a", "na":
		return true
	}
	return false
}

// isMissingRef is isMissing lower-casing with strings.ToLower.
func isMissingRef(s string) bool {
	if len(s) > len("——") {
		return false
	}
	switch strings.ToLower(s) {
	case "", "-", "--", "---", "—", "——", "/", "无", "空", "null", "nil", "none", "n/a", "na":
		return true
	}
	return false
}

// folded reports whether Fold would return s unchanged: no rune width.Fold
// maps (U+3000 and U+FF00-U+FFEF are the only ones), no invisible rune, no
// white space but single inner ASCII spaces, valid UTF-8.
func folded(s string) bool {
	// Values are ASCII and CJK ideographs nearly always: those are checked
	// byte by byte, the rest rune by rune as in foldedRef.
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			if i == 0 || i == len(s)-1 || s[i+1] == ' ' {
				return false
			}
			i++
			continue
		case c < utf8.RuneSelf:
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		case cjkAt(s, i):
			i += 3
			continue
		}
		return foldedRef(s[i:])
	}
	return true
}

// cjkAt reports whether s[i:] starts with the UTF-8 encoding of a CJK
// ideograph U+4E00-U+9FFF (E4 B8 80 to E9 BF BF): no case, no width, no
// white space.
func cjkAt(s string, i int) bool {
	if i+2 >= len(s) {
		return false
	}
	c0, c1, c2 := s[i], s[i+1], s[i+2]
	return c0 >= 0xe4 && c0 <= 0xe9 && c1 >= 0x80 && c1 <= 0xbf && c2 >= 0x80 && c2 <= 0xbf && (c0 != 0xe4 || c1 >= 0xb8)
}

// foldedRef is folded decoding every rune.
func foldedRef(s string) bool {
	for i, r := range s {
		switch {
		case r == ' ':
			if i == 0 || i == len(s)-1 || s[i+1] == ' ' {
				return false
			}
		case r < 0x80:
			if r < 0x20 || r == 0x7f {
				return false
			}
		case r == 0x3000 || (r >= 0xff00 && r <= 0xffef), unicode.IsSpace(r), r == utf8.RuneError,
			r == '\ufeff' || r == '\u200b' || r == '\u200c' || r == '\u200d' || r == '\u2060':
			return false
		}
	}
	return true
}
