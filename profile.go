package firmbridge

import (
	"context"
	"time"
)

// Profile is what a bank sees of a firm: only the sections its consent covers.
// Amounts are decimal strings in yuan, exact to the fen, so that no JSON
// client rounds them through a float.
type Profile struct {
	USCC      string          `json:"uscc"`
	Purpose   string          `json:"purpose"`
	ConsentID string          `json:"consent_id"`
	Identity  *FirmIdentity   `json:"identity"`
	Tax       *TaxSection     `json:"tax,omitempty"`
	Sections  []string        `json:"sections"`
	Withheld  []WithheldScope `json:"withheld,omitempty"`
}

// WithheldScope names a section left out and why.
type WithheldScope struct {
	Scope  string `json:"scope"`
	Reason string `json:"reason"`
}

// FirmIdentity is the firm as last seen in any source.
type FirmIdentity struct {
	USCC   string    `json:"uscc"`
	Name   string    `json:"name"`
	Source string    `json:"source"`
	AsOf   time.Time `json:"as_of"`
}

// TaxSection summarizes a firm's tax filings.
type TaxSection struct {
	AsOf    time.Time   `json:"as_of"`
	Sources []string    `json:"sources"`
	Returns []VATPeriod `json:"vat_returns"`
	// Totals over Returns.
	SalesTotal      string `json:"sales_total_yuan"`
	TaxPayableTotal string `json:"tax_payable_total_yuan"`
	LateFilings     int    `json:"late_filings"`
}

// VATPeriod is one VAT return period.
type VATPeriod struct {
	PeriodStart string `json:"period_start"`
	PeriodEnd   string `json:"period_end"`
	PeriodKind  string `json:"period_kind"`
	FiledOn     string `json:"filed_on"`
	Late        bool   `json:"late"`
	Sales       string `json:"sales_yuan"`
	OutputTax   string `json:"output_tax_yuan"`
	InputTax    string `json:"input_tax_yuan"`
	TaxPayable  string `json:"tax_payable_yuan"`
	RecordID    string `json:"record_id"`
}

// ProfileReader reads the canonical tables for profiles.
type ProfileReader interface {
	// FirmIdentity returns ENOTFOUND when the firm was never seen.
	FirmIdentity(ctx context.Context, uscc string) (*FirmIdentity, error)
	// TaxSection returns the VAT returns whose period starts on or after since
	// (zero: all), newest first, at most months periods.
	TaxSection(ctx context.Context, uscc string, since time.Time, months int) (*TaxSection, error)
}
