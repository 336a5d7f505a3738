package connectors

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// Reader reads typed values out of a record's Fields and turns the first
// failure into a *firmbridge.Reject naming the field. After a failure every
// further read returns a zero value, so a connector reads all its fields
// and checks Err once:
//
//	r := connectors.NewReader(fields)
//	uscc := r.USCC("uscc")
//	amount := r.Yuan("", "amount_owed")
//	if err := r.Err(); err != nil {
//		return nil, err
//	}
type Reader struct {
	Fields Fields
	err    *firmbridge.Reject
}

// NewReader returns a Reader over f.
func NewReader(f Fields) *Reader { return &Reader{Fields: f} }

// Err returns the first failure as a *firmbridge.Reject, or nil.
func (r *Reader) Err() error {
	if r.err == nil {
		return nil
	}
	return r.err
}

// Failed reports whether a read has failed.
func (r *Reader) Failed() bool { return r.err != nil }

// Fail records a reject unless one was recorded already.
func (r *Reader) Fail(code, field, format string, args ...any) {
	if r.err == nil {
		r.err = &firmbridge.Reject{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
	}
}

// failErr records err for field: ErrMissing becomes RejectMissingField,
// ErrUnknownUnit and ErrUnknownValue RejectInvalidEnum, anything else code.
func (r *Reader) failErr(code, field string, err error) {
	switch {
	case errors.Is(err, ErrMissing):
		r.Fail(firmbridge.RejectMissingField, field, "%s is required", field)
	case errors.Is(err, ErrUnknownUnit), errors.Is(err, ErrUnknownValue):
		r.Fail(firmbridge.RejectInvalidEnum, field, "%s", err.Error())
	default:
		r.Fail(code, field, "%s", err.Error())
	}
}

func (r *Reader) lookup(names []string) (string, string) {
	v, name, ok := r.Fields.Lookup(names...)
	if !ok && len(names) > 0 {
		name = names[0]
	}
	return v, name
}

// Text returns a field's folded value, "" when absent or a placeholder.
func (r *Reader) Text(names ...string) string {
	if r.err != nil {
		return ""
	}
	v, _ := r.lookup(names)
	v = Fold(v)
	if isMissing(v) {
		return ""
	}
	return v
}

// RequiredText is Text for a field that must have a value.
func (r *Reader) RequiredText(names ...string) string {
	if r.err != nil {
		return ""
	}
	v, name := r.lookup(names)
	if v = Fold(v); isMissing(v) {
		r.Fail(firmbridge.RejectMissingField, name, "%s is required", name)
		return ""
	}
	return v
}

// Name returns a required firm or party name, cleaned with CleanName.
func (r *Reader) Name(names ...string) string {
	return CleanName(r.RequiredText(names...))
}

// USCC returns a required USCC, normalized and validated.
func (r *Reader) USCC(names ...string) string {
	if r.err != nil {
		return ""
	}
	v, name := r.lookup(names)
	return r.usccValue(name, v)
}

func (r *Reader) usccValue(name, v string) string {
	u, err := NormalizeUSCC(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidUSCC, name, err)
	}
	return u
}

// optional looks a field up for the Optional readers: ok is false when a
// read failed already or the value is absent or a placeholder, when Text
// would return "". It spares them a second lookup.
func (r *Reader) optional(names []string) (v, name string, ok bool) {
	if r.err != nil {
		return "", "", false
	}
	v, name = r.lookup(names)
	return v, name, !isMissing(Fold(v))
}

// OptionalUSCC returns a USCC that may be absent (""), validated when present.
func (r *Reader) OptionalUSCC(names ...string) string {
	v, name, ok := r.optional(names)
	if !ok {
		return ""
	}
	return r.usccValue(name, v)
}

// Yuan returns a required amount in yuan (see ParseYuan); unit is the
// amount's unit from another column, "" when none.
func (r *Reader) Yuan(unit string, names ...string) decimal.Decimal {
	if r.err != nil {
		return decimal.Decimal{}
	}
	v, name := r.lookup(names)
	return r.yuanValue(unit, name, v)
}

func (r *Reader) yuanValue(unit, name, v string) decimal.Decimal {
	d, err := ParseYuan(v, unit)
	if err != nil {
		if errors.Is(err, ErrUnknownUnit) {
			r.Fail(firmbridge.RejectInvalidEnum, name, "%s", err.Error())
			return d
		}
		r.failErr(firmbridge.RejectInvalidAmount, name, err)
	}
	return d
}

// OptionalYuan is Yuan for an amount that may be missing (nil).
func (r *Reader) OptionalYuan(unit string, names ...string) *decimal.Decimal {
	v, name, ok := r.optional(names)
	if !ok {
		return nil
	}
	d := r.yuanValue(unit, name, v)
	return &d
}

// Scaled returns a required quantity multiplied by factor (see ParseScaled).
func (r *Reader) Scaled(factor decimal.Decimal, names ...string) decimal.Decimal {
	if r.err != nil {
		return decimal.Decimal{}
	}
	v, name := r.lookup(names)
	return r.ScaledValue(factor, name, v)
}

// ScaledValue is Scaled for a value v the connector has read (and cleaned)
// itself; a failure names field.
func (r *Reader) ScaledValue(factor decimal.Decimal, field, v string) decimal.Decimal {
	if r.err != nil {
		return decimal.Decimal{}
	}
	d, err := ParseScaled(v, factor)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidAmount, field, err)
	}
	return d
}

// OptionalScaled is Scaled for a quantity that may be missing (nil).
func (r *Reader) OptionalScaled(factor decimal.Decimal, names ...string) *decimal.Decimal {
	v, name, ok := r.optional(names)
	if !ok {
		return nil
	}
	d := r.ScaledValue(factor, name, v)
	return &d
}

// Count returns a required non-negative whole number ("86", "86人", "1,024").
func (r *Reader) Count(names ...string) uint64 {
	if r.err != nil {
		return 0
	}
	v, name := r.lookup(names)
	f := strings.TrimSuffix(compact(Fold(v), ""), "人")
	if isMissing(f) {
		r.Fail(firmbridge.RejectMissingField, name, "%s is required", name)
		return 0
	}
	if len(f) <= 9 && digits(f) { // below 2^32 and plain, as nearly every count is
		n, _ := strconv.ParseUint(f, 10, 64)
		return n
	}
	d, err := parseNumber(strings.TrimSuffix(f, ".0"))
	switch {
	case err != nil || !d.IsInteger():
		r.Fail(firmbridge.RejectInvalidAmount, name, "%s %q is not a whole number", name, v)
	case d.IsNegative():
		r.Fail(firmbridge.RejectImplausible, name, "%s %s is negative", name, v)
	case d.GreaterThan(decimal.NewFromInt(1<<32 - 1)):
		r.Fail(firmbridge.RejectImplausible, name, "%s %s is too large", name, v)
	default:
		n, _ := strconv.ParseUint(d.String(), 10, 64)
		return n
	}
	return 0
}

// Date returns a required date (see ParseDate).
func (r *Reader) Date(names ...string) time.Time {
	if r.err != nil {
		return time.Time{}
	}
	v, name := r.lookup(names)
	return r.dateValue(name, v)
}

func (r *Reader) dateValue(name, v string) time.Time {
	t, err := ParseDate(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidDate, name, err)
	}
	return t
}

// OptionalDate is Date for a date that may be missing (nil).
func (r *Reader) OptionalDate(names ...string) *time.Time {
	v, name, ok := r.optional(names)
	if !ok {
		return nil
	}
	t := r.dateValue(name, v)
	return &t
}

// Period returns a required period of one of the allowed kinds (all kinds
// when none are given).
func (r *Reader) Period(kinds []PeriodKind, names ...string) Period {
	if r.err != nil {
		return Period{}
	}
	v, name := r.lookup(names)
	p, err := ParsePeriod(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidPeriod, name, err)
		return p
	}
	if len(kinds) > 0 && !slices.Contains(kinds, p.Kind) {
		want := make([]string, 0, len(kinds)) // only for the message
		for _, k := range kinds {
			want = append(want, k.String())
		}
		r.Fail(firmbridge.RejectInvalidPeriod, name, "%s %q is a %s, want a %s", name, v, p.Kind, strings.Join(want, " or "))
	}
	return p
}

// Year returns a required year (2023, "2023年").
func (r *Reader) Year(names ...string) int {
	if r.err != nil {
		return 0
	}
	v, name := r.lookup(names)
	y, err := ParseYear(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidPeriod, name, err)
	}
	return y
}

// Enum returns the canonical value of a required enumerated field.
func (r *Reader) Enum(e *Enum, names ...string) string {
	if r.err != nil {
		return ""
	}
	v, name := r.lookup(names)
	c, err := e.Parse(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidEnum, name, err)
	}
	return c
}

// NotNegative rejects a negative value of field with RejectImplausible.
func (r *Reader) NotNegative(field string, v decimal.Decimal) {
	if r.err == nil && v.IsNegative() {
		r.Fail(firmbridge.RejectImplausible, field, "%s %s is negative", field, v.StringFixed(2))
	}
}

// NotFuture rejects, with RejectFuturePeriod, a date or period start that
// lies after the day the record was observed (in China time): a provider
// cannot have observed something about a day that had not begun.
func (r *Reader) NotFuture(field string, t time.Time, observedAt time.Time) {
	if r.err == nil && !t.IsZero() && t.After(LocalDate(observedAt)) {
		r.Fail(firmbridge.RejectFuturePeriod, field, "%s %s is after the record was observed (%s)",
			field, t.Format("2006-01-02"), LocalDate(observedAt).Format("2006-01-02"))
	}
}

// Currency returns the ISO 4217 code of a required currency field (see
// NormalizeCurrency).
func (r *Reader) Currency(names ...string) string {
	if r.err != nil {
		return ""
	}
	v, name := r.lookup(names)
	c, err := NormalizeCurrency(v)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidEnum, name, err)
	}
	return c
}

// Money returns a required amount in currency, a code from Currency (see
// ParseMoney).
func (r *Reader) Money(currency string, names ...string) decimal.Decimal {
	if r.err != nil {
		return decimal.Decimal{}
	}
	v, name := r.lookup(names)
	m, err := ParseMoney(v, currency)
	if err != nil {
		r.failErr(firmbridge.RejectInvalidAmount, name, err)
	}
	return m.Amount
}
