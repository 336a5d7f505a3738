package patent

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/firmbridge/firmbridge/connectors"
)

// ErrInvalidApplicationNo is wrapped by every application number error.
var ErrInvalidApplicationNo = errors.New("invalid application number")

// ApplicationNo is a CNIPA application number (专利申请号). Since 2003:
// 4 digits of year, 1 digit of type, 7 digits of serial, a dot and a check
// character. Before 2003: 2 digits of year, 1 of type, 5 of serial, a dot
// and a check character. The check character is Σ digit×weight mod 11 with
// weights 2 3 4 5 6 7 8 9 2 3 4 5 (the first eight for the old form), and
// 10 written X.
type ApplicationNo struct {
	Year   int    // four-digit filing year
	Type   int    // 1 invention, 2 utility model, 3 design, 8 PCT invention, 9 PCT utility model
	digits string // the 12 (or 8) digits before the check character
	Check  byte
}

var appWeights = [12]int{2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5}

var reAppNo = regexp.MustCompile(`^(\d{12}|\d{8})\.?([0-9X])$`)

// ApplicationCheckChar computes the check character of an application
// number from its 12 digits (or the 8 of the pre-2003 form).
func ApplicationCheckChar(digits string) (byte, error) {
	if len(digits) != 12 && len(digits) != 8 {
		return 0, fmt.Errorf("%w: need 12 digits (or 8 before 2003), got %q", ErrInvalidApplicationNo, digits)
	}
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := digits[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%w: %q is not all digits", ErrInvalidApplicationNo, digits)
		}
		sum += int(d-'0') * appWeights[i]
	}
	c := sum % 11
	if c == 10 {
		return 'X', nil
	}
	return byte('0' + c), nil
}

// ParseApplicationNo parses an application number as providers write it:
// with or without the CN (or ZL, for granted patents) prefix, with or
// without the dot, in any case and width, with stray spaces. The check
// character and the type digit are verified.
func ParseApplicationNo(s string) (ApplicationNo, error) {
	f := strings.ToUpper(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '-' {
			return -1
		}
		return r
	}, connectors.Fold(s)))
	if f == "" {
		return ApplicationNo{}, fmt.Errorf("%w: application number is empty", connectors.ErrMissing)
	}
	f = strings.TrimPrefix(strings.TrimPrefix(f, "CN"), "ZL")
	digs, check, ok := splitApplicationNo(f)
	if !ok {
		m := reAppNo.FindStringSubmatch(f)
		if m == nil {
			return ApplicationNo{}, fmt.Errorf("%w: %q is not like 202310123456.6", ErrInvalidApplicationNo, s)
		}
		digs, check = m[1], m[2][0]
	}
	a := ApplicationNo{digits: digs, Check: check}
	if len(a.digits) == 12 {
		a.Year, _ = strconv.Atoi(a.digits[:4])
		a.Type = int(a.digits[4] - '0')
	} else {
		yy, _ := strconv.Atoi(a.digits[:2])
		a.Year = 1900 + yy
		if yy < 85 {
			a.Year = 2000 + yy
		}
		a.Type = int(a.digits[2] - '0')
	}
	switch a.Type {
	case 1, 2, 3, 8, 9:
	default:
		return ApplicationNo{}, fmt.Errorf("%w: %q has type digit %d (want 1, 2, 3, 8 or 9)", ErrInvalidApplicationNo, s, a.Type)
	}
	if a.Year < 1985 || a.Year > connectors.MaxYear || (len(a.digits) == 12 && a.Year < 2003) {
		return ApplicationNo{}, fmt.Errorf("%w: %q has year %d", ErrInvalidApplicationNo, s, a.Year)
	}
	want, _ := ApplicationCheckChar(a.digits)
	if want != a.Check {
		return ApplicationNo{}, fmt.Errorf("%w: check character of %s is %c, want %c", ErrInvalidApplicationNo, s, a.Check, want)
	}
	return a, nil
}

// splitApplicationNo returns reAppNo's submatches of f without the
// regular expression: 12 or 8 digits, an optional dot and a check
// character. False means the regular expression decides.
// FuzzSplitApplicationNo checks both agree.
func splitApplicationNo(f string) (digs string, check byte, ok bool) {
	k := 0
	switch len(f) {
	case 13, 14:
		k = 12
	case 9, 10:
		k = 8
	default:
		return "", 0, false
	}
	if !isDigits(f[:k]) || (len(f) == k+2 && f[k] != '.') {
		return "", 0, false
	}
	c := f[len(f)-1]
	if (c < '0' || c > '9') && c != 'X' {
		return "", 0, false
	}
	return f[:k], c, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String writes the canonical form, 202310123456.6 (no prefix).
func (a ApplicationNo) String() string { return a.digits + "." + string(a.Check) }

// Kind is the patent type the number encodes: invention, utility_model or design.
func (a ApplicationNo) Kind() string {
	switch a.Type {
	case 1, 8:
		return KindInvention
	case 2, 9:
		return KindUtilityModel
	}
	return KindDesign
}

// PCT reports whether the application entered China through the PCT.
func (a ApplicationNo) PCT() bool { return a.Type == 8 || a.Type == 9 }

// IPC is an International Patent Classification symbol: H01M 10/42 is
// section H, class 01, subclass M, main group 10, subgroup 42.
type IPC struct {
	Section   string
	Class     string
	Subclass  string
	MainGroup string
	Subgroup  string
}

var (
	reIPC   = regexp.MustCompile(`^([A-H])(\d{2})([A-Z])(\d{1,4})/(\d{2,6})$`)
	reIPC14 = regexp.MustCompile(`^([A-H])(\d{2})([A-Z])(\d{4})(\d{6})$`)
	reIPCv  = regexp.MustCompile(`\(\d{4}\.\d{2}\)$`)
)

// ParseIPC parses an IPC symbol: "H01M 10/42", "H01M10/42", "h01m 10/42",
// with an optional version suffix "(2006.01)", or the 14-character form
// "H01M0010420000".
func ParseIPC(s string) (IPC, error) {
	f := strings.ToUpper(strings.ReplaceAll(connectors.Fold(s), " ", ""))
	if strings.HasSuffix(f, ")") { // reIPCv matches nothing else
		f = reIPCv.ReplaceAllString(f, "")
	}
	if f == "" {
		return IPC{}, fmt.Errorf("%w: IPC symbol is empty", connectors.ErrMissing)
	}
	if m, ok := splitIPC(f); ok {
		return IPC{Section: m[0], Class: m[1], Subclass: m[2], MainGroup: trimZeros(m[3]), Subgroup: m[4]}, nil
	}
	if m := reIPC.FindStringSubmatch(f); m != nil {
		return IPC{Section: m[1], Class: m[2], Subclass: m[3], MainGroup: trimZeros(m[4]), Subgroup: m[5]}, nil
	}
	if m := reIPC14.FindStringSubmatch(f); m != nil {
		sub := strings.TrimRight(m[5], "0")
		for len(sub) < 2 {
			sub += "0"
		}
		return IPC{Section: m[1], Class: m[2], Subclass: m[3], MainGroup: trimZeros(m[4]), Subgroup: sub}, nil
	}
	return IPC{}, fmt.Errorf("%q is not an IPC symbol like H01M 10/42", s)
}

// splitIPC returns reIPC's five submatches of f without the regular
// expression; false means the regular expression decides. FuzzSplitIPC
// checks both agree.
func splitIPC(f string) (m [5]string, ok bool) {
	if len(f) < 8 || f[0] < 'A' || f[0] > 'H' || !isDigits(f[1:3]) || f[3] < 'A' || f[3] > 'Z' {
		return m, false
	}
	slash := strings.IndexByte(f, '/')
	if slash < 5 || slash > 8 || !isDigits(f[4:slash]) {
		return m, false
	}
	if sub := f[slash+1:]; len(sub) < 2 || len(sub) > 6 || !isDigits(sub) {
		return m, false
	}
	return [5]string{f[:1], f[1:3], f[3:4], f[4:slash], f[slash+1:]}, true
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// String writes the symbol as H01M 10/42.
func (c IPC) String() string { return c.SubclassCode() + " " + c.MainGroup + "/" + c.Subgroup }

// SubclassCode is the four-character subclass, H01M.
func (c IPC) SubclassCode() string { return c.Section + c.Class + c.Subclass }

// Party is a person or firm named in a legal event: a name, and a USCC
// when the provider gave one.
type Party struct {
	Name string
	USCC string
}

var reTrailingBracket = regexp.MustCompile(`^(.*)\(([^()]*)\)$`)

// ParseParty parses a party as the patent office writes it: a name,
// optionally followed by a USCC in brackets, half- or full-width:
// 某某银行股份有限公司(91110000100000000X). Brackets that do not hold 18
// letters and digits are part of the name (某某科技（福州）有限公司). A
// bracketed 18-character code that is not a valid USCC is an error.
func ParseParty(s string) (Party, error) {
	f := connectors.Fold(s)
	if f == "" {
		return Party{}, nil
	}
	if name, inner, ok := splitTrailingBracket(f); ok {
		code := strings.ToUpper(spacesAndDashes.Replace(inner))
		if len(code) == 18 && isAlnum(code) {
			u, err := connectors.NormalizeUSCC(code)
			if err != nil {
				return Party{}, err
			}
			name := connectors.CleanName(name)
			if name == "" {
				return Party{}, fmt.Errorf("%w: party %q has a USCC but no name", connectors.ErrMissing, s)
			}
			return Party{Name: name, USCC: u}, nil
		}
	}
	return Party{Name: connectors.CleanName(f)}, nil
}

// spacesAndDashes removes spaces and dashes; built once, as a Replacer is
// safe for concurrent use and building one per party was a fifth of a
// legal event's CPU.
var spacesAndDashes = strings.NewReplacer(" ", "", "-", "")

// splitTrailingBracket returns the two submatches of reTrailingBracket
// (the text before a final bracketed part, and what the brackets hold)
// without the regular expression: the last "(" before a final ")", with
// no bracket between them. A line break, which its "." does not match, is
// left to the regular expression. FuzzSplitTrailingBracket checks both
// agree.
func splitTrailingBracket(f string) (before, inner string, ok bool) {
	if strings.IndexByte(f, '\n') >= 0 {
		m := reTrailingBracket.FindStringSubmatch(f)
		if m == nil {
			return "", "", false
		}
		return m[1], m[2], true
	}
	if !strings.HasSuffix(f, ")") {
		return "", "", false
	}
	body := f[:len(f)-1]
	open := strings.LastIndexByte(body, '(')
	if open < 0 || strings.IndexByte(body[open+1:], ')') >= 0 {
		return "", "", false
	}
	return body[:open], body[open+1:], true
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
