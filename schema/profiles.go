package schema

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/firmbridge/firmbridge"
)

// ProfileReader is the firmbridge.ProfileReader on ClickHouse.
type ProfileReader struct{ *Store }

var _ firmbridge.ProfileReader = ProfileReader{}

// FirmIdentity returns the newest observation of a firm.
func (s ProfileReader) FirmIdentity(ctx context.Context, uscc string) (*firmbridge.FirmIdentity, error) {
	rows, err := s.conn.Query(ctx, "SELECT uscc, name, source, observed_at FROM firms FINAL WHERE uscc = ?", uscc)
	if err != nil {
		return nil, fmt.Errorf("read firm %s: %w", uscc, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read firm %s: %w", uscc, err)
		}
		return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "firm_not_found", "no data has been received for firm %s", uscc)
	}
	var f firmbridge.FirmIdentity
	if err := rows.Scan(&f.USCC, &f.Name, &f.Source, &f.AsOf); err != nil {
		return nil, fmt.Errorf("read firm %s: %w", uscc, err)
	}
	return &f, nil
}

// TaxSection reads a firm's VAT returns. Each record id is taken at its
// newest version (argMax), which is exact even before ClickHouse merged
// the replaced rows away.
func (s ProfileReader) TaxSection(ctx context.Context, uscc string, since time.Time, months int) (*firmbridge.TaxSection, error) {
	rows, err := s.conn.Query(ctx, `SELECT record_id,
			argMax(period_start, version) AS ps, argMax(period_end, version), argMax(toString(period_kind), version),
			argMax(filed_on, version), argMax(late, version),
			argMax(sales, version), argMax(output_tax, version), argMax(input_tax, version), argMax(tax_payable, version),
			argMax(source, version), max(observed_at)
		FROM tax_vat_returns WHERE uscc = ? GROUP BY record_id HAVING ps >= toDate(?)`, uscc, since.UTC().Format("2006-01-02"))
	if err != nil {
		return nil, fmt.Errorf("read tax of %s: %w", uscc, err)
	}
	defer rows.Close()
	type row struct {
		p      firmbridge.VATPeriod
		start  time.Time
		sales  decimal.Decimal
		pay    decimal.Decimal
		source string
	}
	var all []row
	sec := &firmbridge.TaxSection{}
	for rows.Next() {
		var r row
		var end, filed, observed time.Time
		var late uint8
		var out, in decimal.Decimal
		if err := rows.Scan(&r.p.RecordID, &r.start, &end, &r.p.PeriodKind, &filed, &late, &r.sales, &out, &in, &r.pay, &r.source, &observed); err != nil {
			return nil, fmt.Errorf("read tax of %s: %w", uscc, err)
		}
		r.p.PeriodStart, r.p.PeriodEnd, r.p.FiledOn = r.start.Format("2006-01-02"), end.Format("2006-01-02"), filed.Format("2006-01-02")
		r.p.Late = late == 1
		r.p.Sales, r.p.OutputTax, r.p.InputTax, r.p.TaxPayable = r.sales.StringFixed(2), out.StringFixed(2), in.StringFixed(2), r.pay.StringFixed(2)
		if observed.After(sec.AsOf) {
			sec.AsOf = observed
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tax of %s: %w", uscc, err)
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].start.Equal(all[j].start) {
			return all[i].start.After(all[j].start)
		}
		return all[i].p.RecordID < all[j].p.RecordID
	})
	if months > 0 && len(all) > months {
		all = all[:months]
	}
	sales, pay := decimal.Zero, decimal.Zero
	sources := map[string]bool{}
	sec.Returns = []firmbridge.VATPeriod{}
	for _, r := range all {
		sec.Returns = append(sec.Returns, r.p)
		sales, pay = sales.Add(r.sales), pay.Add(r.pay)
		if r.p.Late {
			sec.LateFilings++
		}
		if !sources[r.source] {
			sources[r.source] = true
			sec.Sources = append(sec.Sources, r.source)
		}
	}
	sort.Strings(sec.Sources)
	sec.SalesTotal, sec.TaxPayableTotal = sales.StringFixed(2), pay.StringFixed(2)
	return sec, nil
}
