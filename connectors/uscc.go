package connectors

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// USCCAlphabet is the character set of the unified social credit code
// (统一社会信用代码, GB 32100-2015): digits and upper-case letters without
// I, O, S, V and Z. A character's value is its index.
const USCCAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// usccWeights are 3^(i-1) mod 31 for positions 1-17.
var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

var usccValue = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(USCCAlphabet); i++ {
		v[USCCAlphabet[i]] = int8(i)
	}
	return v
}()

// ErrInvalidUSCC is wrapped by every USCC validation error.
var ErrInvalidUSCC = errors.New("invalid USCC")

// CheckChar computes the check character (position 18) of a USCC from its
// first 17 characters, which must be upper-case characters of USCCAlphabet:
// 31 − (Σ value×weight mod 31), where 31 is written '0'.
func CheckChar(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, fmt.Errorf("%w: need 17 characters to compute a check character, got %d", ErrInvalidUSCC, len(first17))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := usccValue[first17[i]]
		if v < 0 {
			return 0, fmt.Errorf("%w: character %q at position %d is not allowed", ErrInvalidUSCC, first17[i], i+1)
		}
		sum += int(v) * usccWeights[i]
	}
	c := 31 - sum%31
	if c == 31 {
		c = 0
	}
	return USCCAlphabet[c], nil
}

// ValidUSCC reports whether s is a valid USCC exactly as given: 18
// upper-case characters of USCCAlphabet with a correct check character.
// Use NormalizeUSCC for values as providers send them.
func ValidUSCC(s string) bool {
	return canonicalUSCC(s)
}

// canonicalUSCC is validateUSCC(s) == nil without making the error.
func canonicalUSCC(s string) bool {
	if len(s) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := usccValue[s[i]]
		if v < 0 {
			return false
		}
		sum += int(v) * usccWeights[i]
	}
	c := 31 - sum%31
	if c == 31 {
		c = 0
	}
	return s[17] == USCCAlphabet[c]
}

func validateUSCC(s string) error {
	if len(s) != 18 {
		return fmt.Errorf("%w: %q has %d characters, want 18", ErrInvalidUSCC, s, len([]rune(s)))
	}
	want, err := CheckChar(s[:17])
	if err != nil {
		return err
	}
	if usccValue[s[17]] < 0 {
		return fmt.Errorf("%w: character %q at position 18 is not allowed", ErrInvalidUSCC, s[17])
	}
	if s[17] != want {
		return fmt.Errorf("%w: check character of %s is %c, want %c", ErrInvalidUSCC, s, s[17], want)
	}
	return nil
}

// NormalizeUSCC cleans a USCC as providers send it (surrounding and inner
// spaces, dashes, full-width characters, lower case) and validates it. It
// returns the canonical 18-character upper-case code, or an error wrapping
// ErrInvalidUSCC (ErrMissing when the value is empty).
func NormalizeUSCC(s string) (string, error) {
	if canonicalUSCC(s) { // already canonical, as most are
		return s, nil
	}
	if u, ok := asciiUSCC(s); ok {
		return u, nil
	}
	return normalizeUSCCSlow(s)
}

// normalizeUSCCSlow is NormalizeUSCC without its fast paths.
func normalizeUSCCSlow(s string) (string, error) {
	c := strings.ToUpper(compact(Fold(s), "-_—–‐‑"))
	if c == "" {
		return "", fmt.Errorf("%w: USCC is empty", ErrMissing)
	}
	if err := validateUSCC(c); err != nil {
		return "", err
	}
	return c, nil
}

// asciiUSCC is normalizeUSCCSlow for ASCII text, with full-width digits and
// letters, that cleans up to a valid code ("9135 0100 NK1019 3368",
// "91350100nk10193368", "９１３５..."): for such text Fold only narrows the
// full-width characters, compact drops the white space and the dashes and
// underscores, and strings.ToUpper maps a-z only. Electricity
// exports write USCCs in groups, and the general path's width transformer
// and strings.Map were a tenth of that source's CPU. It reports false for
// anything else, whose result or error the slow path makes.
func asciiUSCC(s string) (string, bool) {
	var buf [18]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '_' || ('\t' <= c && c <= '\r'):
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case c >= utf8.RuneSelf:
			// Full-width digits and letters, which Fold narrows, and the
			// ideographic space, which it makes a space; anything else is
			// for the slow path.
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == '\u3000':
				i += size - 1
				continue
			case '０' <= r && r <= '９', 'Ａ' <= r && r <= 'Ｚ':
				c = byte(r - '０' + '0')
			case 'ａ' <= r && r <= 'ｚ':
				c = byte(r - 'ａ' + 'A')
			default:
				return "", false
			}
			i += size - 1
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if n != len(buf) || !canonicalUSCC(string(buf[:])) {
		return "", false
	}
	return string(buf[:]), true
}
