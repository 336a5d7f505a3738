package connectors

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnknownValue is wrapped when a value is not one of an enumeration's.
var ErrUnknownValue = errors.New("unknown value")

// Enum maps the spellings providers use (Chinese, English, codes, any case,
// full-width, with stray spaces, dashes or underscores) to one canonical
// value.
type Enum struct {
	name   string
	values []string
	m      map[string]string
}

func enumKey(s string) string {
	return strings.ToLower(compact(Fold(s), "-_·."))
}

// NewEnum builds an enumeration from canonical values and their other
// spellings. Every canonical value is also a spelling of itself. It panics
// when two canonical values share a spelling (a programming error).
func NewEnum(name string, spellings map[string][]string) *Enum {
	e := &Enum{name: name, m: map[string]string{}}
	for canon, alts := range spellings {
		e.values = append(e.values, canon)
		for _, s := range append([]string{canon}, alts...) {
			k := enumKey(s)
			if other, dup := e.m[k]; dup && other != canon {
				panic(fmt.Sprintf("enum %s: %q spells both %s and %s", name, s, other, canon))
			}
			e.m[k] = canon
		}
	}
	sort.Strings(e.values)
	return e
}

// Parse returns the canonical value of s. An empty value wraps ErrMissing,
// an unknown one ErrUnknownValue.
func (e *Enum) Parse(s string) (string, error) {
	// The key is lower-cased on the stack: strings.ToLower would allocate
	// for every upper-case spelling (I, GRANT, D级).
	c := compact(Fold(s), "-_·.")
	var buf [32]byte
	if lk, ok := appendLower(buf[:0], c); ok && !isMissing(string(lk)) {
		if v, ok := e.m[string(lk)]; ok {
			return v, nil
		}
	}
	k := enumKey(s)
	if isMissing(k) {
		return "", fmt.Errorf("%w: %s is empty", ErrMissing, e.name)
	}
	if v, ok := e.m[k]; ok {
		return v, nil
	}
	return "", fmt.Errorf("%w: %q is not a %s (want one of %s)", ErrUnknownValue, s, e.name, strings.Join(e.values, ", "))
}

// Values lists the canonical values in order.
func (e *Enum) Values() []string { return append([]string(nil), e.values...) }

// appendLower appends strings.ToLower(s) to dst when s is valid UTF-8
// whose only upper-case letters are ASCII (I, GRANT, D级, 美元): then the
// two agree. It reports false for any other s.
func appendLower(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.ToLower(r) != r {
			return dst, false
		}
		dst = append(dst, s[i:i+n]...)
		i += n
	}
	return dst, true
}
