package connectors

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/shopspring/decimal"
)

var (
	// ErrMissing is wrapped by parse errors for an empty value or a
	// placeholder such as "-", "无" or a bare unit ("元").
	ErrMissing = errors.New("missing value")
	// ErrUnknownUnit is wrapped when a unit of measure is not recognized.
	ErrUnknownUnit = errors.New("unknown unit")
)

// Empty optional fields are common, so their errors are made once.
var (
	errEmptyAmount   = fmt.Errorf("%w: amount is empty", ErrMissing)
	errEmptyValue    = fmt.Errorf("%w: value is empty", ErrMissing)
	errEmptyCurrency = fmt.Errorf("%w: currency is empty", ErrMissing)
	errEmptyPeriod   = fmt.Errorf("%w: period is empty", ErrMissing)
	errEmptyYear     = fmt.Errorf("%w: year is empty", ErrMissing)
	errEmptyDate     = fmt.Errorf("%w: date is empty", ErrMissing)
)

// maxAmount bounds every canonical amount: Decimal(18,2) holds 16 integer digits.
var maxAmount, minAmount = decimal.New(1, 16), decimal.New(-1, 16)

var (
	one     = decimal.NewFromInt(1)
	thousnd = decimal.NewFromInt(1_000)
	wan     = decimal.NewFromInt(10_000)
	million = decimal.NewFromInt(1_000_000)
	qianwan = decimal.NewFromInt(10_000_000)
	yi      = decimal.NewFromInt(100_000_000)
)

// yuanUnits maps a money unit, folded and lower-cased, to its size in yuan.
var yuanUnits = map[string]decimal.Decimal{
	"": one, "元": one, "人民币元": one, "人民币": one, "yuan": one, "cny": one, "rmb": one,
	"千元": thousnd, "万元": wan, "万": wan, "百万元": million, "千万元": qianwan, "亿元": yi, "亿": yi,
}

// yuanSuffixes are the unit suffixes an amount may carry, longest first.
var yuanSuffixes = []string{"人民币元", "百万元", "千万元", "亿元", "万元", "千元", "人民币", "元", "亿", "万", "cny", "rmb"}

// ParseUnit returns the size in yuan of a money unit: "" and 元 are 1,
// 千元 1,000, 万元 (or 万) 10,000, 百万元 1,000,000, 千万元 10,000,000,
// 亿元 (or 亿) 100,000,000. Any other unit is an error wrapping ErrUnknownUnit.
func ParseUnit(unit string) (decimal.Decimal, error) {
	if unit == "" {
		return one, nil
	}
	if f, ok := yuanUnits[unit]; ok { // as sent, nearly always
		return f, nil
	}
	u := strings.ToLower(compact(Fold(unit), ""))
	if f, ok := yuanUnits[u]; ok {
		return f, nil
	}
	return decimal.Decimal{}, fmt.Errorf("%w: money unit %q (want 元, 万元 or 亿元)", ErrUnknownUnit, unit)
}

// ParseYuan parses a money amount into yuan, exact to the fen.
//
// s may carry thousands separators ("3,120,500.00"), full-width digits, a
// ¥/￥ or RMB/CNY prefix, a sign or accounting brackets for negatives, and a
// unit suffix: 元, 万 or 万元 (10,000), 亿 or 亿元 (100,000,000), 千元,
// 百万元, 千万元. unit is the unit the amount is given in when it comes from
// a separate column (金额单位), "" when there is none. When both are given
// they must agree. An empty value, a placeholder ("-", "无") or a bare unit
// ("元") is an error wrapping ErrMissing.
//
// The result has at most two decimal places: an amount that would lose
// precision below one fen ("1.234" 元, "1.234567万") is rejected rather than
// rounded, since the provider's figure cannot be stored as sent. The result
// must fit Decimal(18,2).
func ParseYuan(s string, unit string) (decimal.Decimal, error) {
	colFactor, err := ParseUnit(unit)
	if err != nil {
		return decimal.Decimal{}, err
	}
	if plainAmount(s) { // nothing to fold, strip or look up
		if fen, ok := fenFast(s, colFactor, one); ok {
			return decimal.New(fen, -2), nil
		}
	}
	return parseYuan(s, unit, colFactor)
}

// parseYuan is ParseYuan without the shortcut for plain amounts.
func parseYuan(s string, unit string, colFactor decimal.Decimal) (decimal.Decimal, error) {
	f := strings.ToLower(compact(Fold(s), ""))
	if isMissing(f) {
		return decimal.Decimal{}, errEmptyAmount
	}
	for _, p := range []string{"¥", "rmb", "cny", "人民币"} {
		if strings.HasPrefix(f, p) {
			f = f[len(p):]
			break
		}
	}
	factor, suffixed := colFactor, false
	for _, suf := range yuanSuffixes {
		if strings.HasSuffix(f, suf) {
			f = strings.TrimSuffix(f, suf)
			factor, suffixed = yuanUnits[suf], true
			break
		}
	}
	if f == "" || isMissing(f) {
		return decimal.Decimal{}, fmt.Errorf("%w: amount %q has a unit but no figure", ErrMissing, s)
	}
	if suffixed && strings.TrimSpace(unit) != "" && !factor.Equal(colFactor) {
		return decimal.Decimal{}, fmt.Errorf("amount %q does not match the unit %q given for it", s, unit)
	}
	if fen, ok := fenFast(f, factor, one); ok {
		return decimal.New(fen, -2), nil
	}
	n, err := parseNumber(f)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("amount %q: %w", s, err)
	}
	return toScale2(mulBy(n, factor), s)
}

// ParseDecimal parses a plain quantity: sign, thousands separators,
// full-width digits, and an optional multiplier suffix 万 (10,000) or 亿.
// It is exact; callers decide about precision. Empty values wrap ErrMissing.
func ParseDecimal(s string) (decimal.Decimal, error) {
	f, factor, err := decimalText(s)
	if err != nil {
		return decimal.Decimal{}, err
	}
	n, err := parseNumber(f)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("value %q: %w", s, err)
	}
	return mulBy(n, factor), nil
}

// ParseScaled parses a quantity with ParseDecimal, multiplies it by factor
// (the size of the unit it is given in) and requires the result to have at
// most two decimal places and to fit Decimal(18,2).
func ParseScaled(s string, factor decimal.Decimal) (decimal.Decimal, error) {
	if f, mult, err := decimalText(s); err == nil {
		if fen, ok := fenFast(f, mult, factor); ok {
			return decimal.New(fen, -2), nil
		}
	}
	n, err := ParseDecimal(s)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return toScale2(mulBy(n, factor), s)
}

// decimalText returns the folded number text of a ParseDecimal quantity
// and the multiplier of its suffix (万, 亿), or errEmptyValue.
func decimalText(s string) (string, decimal.Decimal, error) {
	if plainAmount(s) {
		return s, one, nil
	}
	f := strings.ToLower(compact(Fold(s), ""))
	if isMissing(f) {
		return "", decimal.Decimal{}, errEmptyValue
	}
	factor := one
	switch {
	case strings.HasSuffix(f, "万"):
		f, factor = strings.TrimSuffix(f, "万"), wan
	case strings.HasSuffix(f, "亿"):
		f, factor = strings.TrimSuffix(f, "亿"), yi
	}
	return f, factor, nil
}

// plainAmount reports whether s is digits, thousands commas and a point,
// with at least one digit and at most a leading minus: a figure that
// folding, compacting, lower-casing and the prefix and suffix checks
// leave as it is, and no placeholder for "no value".
func plainAmount(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	digit := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digit = true
		case c == ',' || c == '.':
		default:
			return false
		}
	}
	return digit
}

// fenFast is the fast path of toScale2(mulBy(mulBy(parseNumber(f), f1), f2)):
// for a number of at most 18 digits and whole factors it computes the
// amount in fen with int64 arithmetic, without a big.Int per step. It
// reports false whenever it is unsure (unusual forms, too many digits,
// overflow, a fraction below the fen, a value outside Decimal(18,2)); the
// reference path then decides, with its own errors. FuzzAmountFastPath
// checks that both agree.
func fenFast(f string, f1, f2 decimal.Decimal) (int64, bool) {
	k1, ok1 := smallFactor(f1)
	k2, ok2 := smallFactor(f2)
	if !ok1 || !ok2 {
		return 0, false
	}
	k := k1 * k2 // both below 1e9: no overflow
	f, neg := cutSign(f)
	// Digits, optionally in thousands groups, then an optional fraction.
	var m uint64 // every digit, as an integer
	nd, nfrac := 0, 0
	group, grouped, dot := 0, false, false
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			nd++
			if dot {
				nfrac++
			} else {
				group++
			}
			if nd > 18 {
				return 0, false
			}
		case c == ',' && !dot:
			if (!grouped && (group < 1 || group > 3)) || (grouped && group != 3) {
				return 0, false
			}
			grouped, group = true, 0
		case c == '.' && !dot:
			dot = true
		default:
			return 0, false
		}
	}
	if (grouped && group != 3) || nd == 0 {
		return 0, false
	}
	// The amount is m × k × 10^-nfrac yuan, m × k × 10^(2-nfrac) fen.
	hi, p := bits.Mul64(m, uint64(k))
	if hi != 0 || p >= maxFen {
		return 0, false
	}
	switch {
	case nfrac > 2:
		d := pow10[nfrac-2]
		if p%d != 0 {
			return 0, false // finer than a fen, or zeros the reference path handles
		}
		p /= d
	case nfrac < 2:
		d := pow10[2-nfrac]
		if p >= maxFen/d {
			return 0, false
		}
		p *= d
	}
	if p >= maxFen {
		return 0, false
	}
	if neg {
		return -int64(p), true
	}
	return int64(p), true
}

// maxFen is maxAmount in fen: Decimal(18,2) holds less than 10^16 yuan.
const maxFen = 1e18

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// smallFactor returns a unit factor as an integer when it is a whole
// number from 1 to 999,999,999, as every unit is.
func smallFactor(d decimal.Decimal) (int64, bool) {
	if d.Exponent() != 0 || d.Sign() <= 0 || d.NumDigits() > 9 {
		return 0, false
	}
	return d.CoefficientInt64(), true
}

func toScale2(v decimal.Decimal, orig string) (decimal.Decimal, error) {
	r := v
	if v.Exponent() != -2 { // already at fen scale, as most amounts are
		r = v.Round(2)
	}
	if !r.Equal(v) {
		return decimal.Decimal{}, fmt.Errorf("value %q is more precise than 0.01 and would be rounded", orig)
	}
	if r.Cmp(maxAmount) >= 0 || r.Cmp(minAmount) <= 0 {
		return decimal.Decimal{}, fmt.Errorf("value %q is too large", orig)
	}
	return r, nil
}

// mulBy returns n×factor, skipping the big-number product for a factor of
// one, the unit of most amounts.
func mulBy(n, factor decimal.Decimal) decimal.Decimal {
	if factor.Exponent() == 0 && factor.CoefficientInt64() == 1 {
		return n
	}
	return n.Mul(factor)
}

// parseNumber parses a folded, space-free decimal number: an optional sign
// (+, -, −) or accounting brackets, digits with optional thousands
// separators in groups of three, and an optional fraction.
func parseNumber(f string) (decimal.Decimal, error) {
	f, neg := cutSign(f)
	intPart, frac, hasDot := strings.Cut(f, ".")
	if hasDot && strings.ContainsAny(frac, ".,") {
		return decimal.Decimal{}, errors.New("is not a number")
	}
	if strings.Contains(intPart, ",") {
		groups := strings.Split(intPart, ",")
		if len(groups[0]) < 1 || len(groups[0]) > 3 {
			return decimal.Decimal{}, errors.New("has misplaced thousands separators")
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return decimal.Decimal{}, errors.New("has misplaced thousands separators")
			}
		}
		intPart = strings.Join(groups, "")
	}
	if intPart == "" && frac == "" {
		return decimal.Decimal{}, errors.New("is not a number")
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return decimal.Decimal{}, errors.New("is not a number")
			}
		}
	}
	if len(intPart) > 30 || len(frac) > 30 {
		return decimal.Decimal{}, errors.New("has too many digits")
	}
	if intPart == "" {
		intPart = "0"
	}
	if len(intPart)+len(frac) <= 18 { // fits an int64: no text to parse again
		var n int64
		for _, part := range []string{intPart, frac} {
			for i := 0; i < len(part); i++ {
				n = n*10 + int64(part[i]-'0')
			}
		}
		if neg {
			n = -n
		}
		return decimal.New(n, -int32(len(frac))), nil
	}
	num := intPart
	if frac != "" {
		num += "." + frac
	}
	d, err := decimal.NewFromString(num)
	if err != nil {
		return decimal.Decimal{}, errors.New("is not a number")
	}
	if neg {
		d = d.Neg()
	}
	return d, nil
}

// Money is an amount in its own currency. Amounts in foreign currencies are
// kept as sent; no exchange rate is applied anywhere in the connectors.
type Money struct {
	Amount   decimal.Decimal
	Currency string // ISO 4217 code, e.g. CNY, USD, EUR
}

// ParseMoney parses an amount in the given currency (see NormalizeCurrency).
// CNY amounts accept everything ParseYuan does; other currencies accept
// ParseDecimal's forms (separators, 万/亿 multipliers). Both are exact to
// two decimal places.
func ParseMoney(amount, currency string) (Money, error) {
	cur, err := NormalizeCurrency(currency)
	if err != nil {
		return Money{}, err
	}
	if cur == "CNY" {
		v, err := ParseYuan(amount, "")
		return Money{Amount: v, Currency: cur}, err
	}
	v, err := ParseScaled(amount, one)
	return Money{Amount: v, Currency: cur}, err
}

// currencies maps currency names and the customs numeric codes (币制代码)
// to ISO 4217 codes.
var currencies = map[string]string{
	"人民币": "CNY", "元": "CNY", "rmb": "CNY", "142": "CNY",
	"美元": "USD", "美金": "USD", "502": "USD",
	"欧元": "EUR", "300": "EUR",
	"港币": "HKD", "港元": "HKD", "110": "HKD",
	"日元": "JPY", "116": "JPY",
	"英镑": "GBP", "303": "GBP",
	"韩元": "KRW", "133": "KRW",
	"新台币": "TWD", "143": "TWD",
	"新加坡元": "SGD", "132": "SGD",
	"澳大利亚元": "AUD", "澳元": "AUD", "601": "AUD",
	"加拿大元": "CAD", "加元": "CAD", "501": "CAD",
	"瑞士法郎": "CHF", "331": "CHF",
	"卢布": "RUB", "344": "RUB",
}

var isoCurrencies = map[string]bool{
	"CNY": true, "USD": true, "EUR": true, "HKD": true, "JPY": true, "GBP": true, "KRW": true,
	"TWD": true, "SGD": true, "AUD": true, "CAD": true, "CHF": true, "RUB": true, "MOP": true,
	"NZD": true, "SEK": true, "NOK": true, "DKK": true, "THB": true, "MYR": true, "IDR": true,
	"INR": true, "VND": true, "PHP": true, "AED": true, "SAR": true, "BRL": true, "ZAR": true,
}

// NormalizeCurrency returns the ISO 4217 code of a currency given as a
// code in any case ("usd"), a Chinese name ("美元", "人民币") or a customs
// numeric currency code ("502"). Unknown currencies are an error wrapping
// ErrUnknownUnit; an empty value wraps ErrMissing.
func NormalizeCurrency(s string) (string, error) {
	f := compact(Fold(s), "")
	if isMissing(f) {
		return "", errEmptyCurrency
	}
	var buf [32]byte
	if lf, ok := appendLower(buf[:0], f); ok { // lower-cased without an allocation
		if c, ok := currencies[string(lf)]; ok {
			return c, nil
		}
	} else if c, ok := currencies[strings.ToLower(f)]; ok {
		return c, nil
	}
	if u := strings.ToUpper(f); isoCurrencies[u] {
		return u, nil
	}
	return "", fmt.Errorf("%w: currency %q", ErrUnknownUnit, s)
}

// cutSign removes a leading sign or the parentheses accountants write
// around a negative amount, and says whether the number is negative.
func cutSign(f string) (string, bool) {
	switch {
	case len(f) > 2 && f[0] == '(' && f[len(f)-1] == ')':
		return f[1 : len(f)-1], true
	case strings.HasPrefix(f, "-"):
		return f[1:], true
	case strings.HasPrefix(f, "−"):
		return f[len("−"):], true
	case strings.HasPrefix(f, "+"):
		return f[1:], false
	}
	return f, false
}
