package firmbridge

import (
	"context"
	"slices"
	"time"
)

// Profile sections, in the order a profile lists them.
const (
	SectionIdentity    = "identity"
	SectionTax         = "tax"
	SectionPatents     = "patents"
	SectionOperations  = "operations"
	SectionConsistency = "consistency"
)

// WithheldScopeNotGranted is why a section is left out when the consent
// does not cover the scopes it is made of.
const WithheldScopeNotGranted = "scope_not_granted"

// SectionScopes names the consent scopes each data section needs. The
// consistency section compares sources, so it needs operations; its
// revenue signal needs tax as well (see ConsistencySignal).
var SectionScopes = map[string][]string{
	SectionTax:         {ScopeTax},
	SectionPatents:     {ScopePatent},
	SectionOperations:  {ScopeOperations},
	SectionConsistency: {ScopeOperations},
}

// ScopeSources lists the provider sources each scope opens, as the
// connectors name them; a record of a source outside its scope never
// reaches a reader.
var ScopeSources = map[string][]string{
	ScopeTax:        {"tax.vat_return", "tax.cit_annual", "tax.credit_rating", "tax.arrears"},
	ScopePatent:     {"patent.bibliographic", "patent.legal_event"},
	ScopeOperations: {"ops.electricity", "ops.water", "ops.social_insurance", "ops.customs"},
}

// SourceScope returns the scope whose data a provider source sends, or ""
// for a source no scope lists.
func SourceScope(source string) string {
	for scope, sources := range ScopeSources {
		if slices.Contains(sources, source) {
			return scope
		}
	}
	return ""
}

// Profile is what a bank sees of a firm: only the sections its consent
// covers, and only data dated on or after the consent's DataFrom.
//
// Money is a decimal string in yuan with exactly two decimals, so that no
// JSON client rounds it through a float; other quantities (kWh, m³,
// foreign currency) are decimal strings with two decimals too. Ratios
// (growth) are decimal strings with four decimals: "0.1250" is +12.5%.
// Dates are "2006-01-02", months "2006-01", quarters "2006Q1".
type Profile struct {
	USCC      string `json:"uscc"`
	Purpose   string `json:"purpose"`
	ConsentID string `json:"consent_id"`
	// DataFrom is the consent's earliest data date, "" when unlimited.
	DataFrom    string              `json:"data_from,omitempty"`
	Identity    *FirmIdentity       `json:"identity"`
	Tax         *TaxSection         `json:"tax,omitempty"`
	Patents     *PatentSection      `json:"patents,omitempty"`
	Operations  *OperationsSection  `json:"operations,omitempty"`
	Consistency *ConsistencySection `json:"consistency,omitempty"`
	// Sections lists the sections served, Withheld the others and why.
	Sections []string          `json:"sections"`
	Withheld []WithheldSection `json:"withheld"`
}

// WithheldSection names a section left out, why, and the scopes it needs
// that the consent lacks.
type WithheldSection struct {
	Section string   `json:"section"`
	Reason  string   `json:"reason"`
	Scopes  []string `json:"missing_scopes,omitempty"`
}

// FirmIdentity is the firm as last named by any source. Name is "" and
// AsOf nil when no source has named the firm yet.
type FirmIdentity struct {
	USCC    string     `json:"uscc"`
	Name    string     `json:"name"`
	Source  string     `json:"source"`
	Sources []string   `json:"sources"`
	AsOf    *time.Time `json:"as_of"`
}

// Series is a quantity over the 24 calendar months that end with the
// newest month the source covers (never starting before DataFrom). Points
// are the periods as filed (a month or a quarter), oldest first.
// Last12 and Prior12 sum the periods that lie wholly in the newest 12
// months and in the 12 before them; YoYGrowth is Last12/Prior12 − 1,
// given only when both halves are fully covered and Prior12 is not zero
// (YoYUnavailable says which condition failed).
type Series struct {
	Unit           string        `json:"unit"`
	From           string        `json:"from"`
	To             string        `json:"to"`
	Points         []SeriesPoint `json:"points"`
	MissingMonths  []string      `json:"missing_months"`
	Last12         string        `json:"last_12m"`
	Prior12        string        `json:"prior_12m"`
	Last12Covered  int           `json:"last_12m_months_covered"`
	Prior12Covered int           `json:"prior_12m_months_covered"`
	YoYGrowth      *string       `json:"yoy_growth"`
	YoYUnavailable string        `json:"yoy_unavailable,omitempty"`
}

// SeriesPoint is one period of a Series.
type SeriesPoint struct {
	Period      string `json:"period"`
	PeriodStart string `json:"period_start"`
	PeriodEnd   string `json:"period_end"`
	Value       string `json:"value"`
}

// Reasons a growth figure is not given.
const (
	GrowthNoData          = "no_data"
	GrowthIncomplete      = "incomplete_periods" // a month of either 12-month half is not covered
	GrowthZeroBase        = "zero_base"          // the earlier half sums to zero
	GrowthPeriodsStraddle = "periods_straddle"   // a filed period lies across the two halves
)

// TaxSection summarizes a firm's tax data.
type TaxSection struct {
	AsOf    *time.Time `json:"as_of"`
	Sources []string   `json:"sources"`
	// Revenue is VAT taxable sales (yuan) per period filed.
	Revenue Series `json:"revenue"`
	// Returns are the VAT returns of Revenue's window, newest first;
	// SalesTotal, TaxPayableTotal and LateFilings are over them.
	Returns         []VATPeriod       `json:"vat_returns"`
	SalesTotal      string            `json:"sales_total_yuan"`
	TaxPayableTotal string            `json:"tax_payable_total_yuan"`
	LateFilings     int               `json:"late_filings"`
	TaxPaid         TaxPaid           `json:"tax_paid"`
	Punctuality     FilingPunctuality `json:"filing_punctuality"`
	CITFilings      []CITFiling       `json:"cit_filings"`
	CreditRatings   []CreditRating    `json:"credit_ratings"`
	Arrears         ArrearsSummary    `json:"arrears"`
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

// TaxPaid is the tax the firm declared payable: VAT over the newest 12
// months and the 12 before them (Revenue's halves, whole periods only),
// and corporate income tax per year.
type TaxPaid struct {
	VATLast12  string       `json:"vat_last_12m_yuan"`
	VATPrior12 string       `json:"vat_prior_12m_yuan"`
	CITByYear  []YearlyYuan `json:"cit_by_year"`
}

// YearlyYuan is an amount for a calendar year.
type YearlyYuan struct {
	Year   int    `json:"year"`
	Amount string `json:"yuan"`
}

// FilingPunctuality counts the filings of Revenue's window (VAT) and of
// the CIT years shown, and how many were late; OnTimeShare is the share
// filed on time, nil without filings.
type FilingPunctuality struct {
	VATReturns  int     `json:"vat_returns"`
	VATLate     int     `json:"vat_late"`
	CITFilings  int     `json:"cit_filings"`
	CITLate     int     `json:"cit_late"`
	OnTimeShare *string `json:"on_time_share"`
}

// CITFiling is one annual corporate income tax filing.
type CITFiling struct {
	TaxYear          int    `json:"tax_year"`
	OperatingRevenue string `json:"operating_revenue_yuan"`
	TotalProfit      string `json:"total_profit_yuan"`
	TaxPayable       string `json:"tax_payable_yuan"`
	FiledOn          string `json:"filed_on"`
	Late             bool   `json:"late"`
	RecordID         string `json:"record_id"`
}

// CreditRating is a tax credit rating (A, B, M, C, D) for a year.
type CreditRating struct {
	Year     int    `json:"year"`
	Rating   string `json:"rating"`
	RecordID string `json:"record_id"`
}

// Arrear is tax owed of one type as of a date.
type Arrear struct {
	TaxType     string `json:"tax_type"`
	TaxTypeName string `json:"tax_type_name"`
	AsOf        string `json:"as_of"`
	AmountOwed  string `json:"amount_owed_yuan"`
	RecordID    string `json:"record_id"`
}

// ArrearsSummary is the newest arrears figure of each tax type (a type
// settled since shows 0.00) and their total.
type ArrearsSummary struct {
	Outstanding string   `json:"outstanding_yuan"`
	AsOf        string   `json:"as_of,omitempty"`
	ByTaxType   []Arrear `json:"by_tax_type"`
}

// PatentSection summarizes the patents a firm holds: those it applied for
// (it is among the applicants of the newest record) or received by
// transfer, less those it transferred away.
type PatentSection struct {
	AsOf          *time.Time    `json:"as_of"`
	Sources       []string      `json:"sources"`
	Counts        PatentCounts  `json:"counts"`
	RecentGrants  []PatentGrant `json:"recent_grants"`
	TopIPC        []IPCCount    `json:"top_ipc_classes"`
	ActivePledges []Pledge      `json:"active_pledges"`
	Pledgees      []Pledgee     `json:"pledgees"`
	Transfers     []Transfer    `json:"transfers"`
}

// PatentCounts counts held applications by kind (invention,
// utility_model, design) and status (pending, granted, rejected,
// withdrawn, lapsed, invalidated). TransferredOut counts applications the
// firm applied for or received and then transferred away (not in Total).
type PatentCounts struct {
	Total          int                       `json:"total"`
	ByKind         map[string]int            `json:"by_kind"`
	ByStatus       map[string]int            `json:"by_status"`
	ByKindStatus   map[string]map[string]int `json:"by_kind_and_status"`
	TransferredOut int                       `json:"transferred_out"`
}

// PatentGrant is a granted patent.
type PatentGrant struct {
	ApplicationNo string `json:"application_no"`
	Kind          string `json:"kind"`
	Title         string `json:"title"`
	GrantDate     string `json:"grant_date"`
	MainIPC       string `json:"main_ipc,omitempty"`
}

// IPCCount is how many held patents carry an IPC subclass (H01M).
type IPCCount struct {
	Subclass string `json:"subclass"`
	Patents  int    `json:"patents"`
}

// Party is a pledgor, pledgee, transferor or transferee.
type Party struct {
	Name string `json:"name"`
	USCC string `json:"uscc,omitempty"`
}

// Pledge is a registered patent pledge not released since.
type Pledge struct {
	ApplicationNo string `json:"application_no"`
	PledgedOn     string `json:"pledged_on"`
	Pledgor       Party  `json:"pledgor"`
	Pledgee       Party  `json:"pledgee"`
	RecordID      string `json:"record_id"`
}

// Pledgee is a pledgee and how many active pledges it holds.
type Pledgee struct {
	Party
	ActivePledges int `json:"active_pledges"`
}

// Transfer is a patent transfer to or from the firm; Direction is "in"
// or "out".
type Transfer struct {
	ApplicationNo string `json:"application_no"`
	Date          string `json:"date"`
	Direction     string `json:"direction"`
	From          Party  `json:"from"`
	To            Party  `json:"to"`
	RecordID      string `json:"record_id"`
}

// OperationsSection summarizes utilities and agencies' data: electricity
// (kWh, summed over the firm's grid accounts per month), water (m³),
// insured headcount, and imports and exports per currency.
type OperationsSection struct {
	AsOf                *time.Time     `json:"as_of"`
	Sources             []string       `json:"sources"`
	Electricity         Series         `json:"electricity"`
	ElectricityAccounts int            `json:"electricity_accounts"`
	Water               Series         `json:"water"`
	Headcount           HeadcountTrend `json:"headcount"`
	Trade               []TradeFlow    `json:"trade"`
}

// HeadcountTrend is the insured headcount per period over the 24 months
// that end with the newest period. Change12m is the newest headcount less
// the one of the period that started 12 months earlier (nil when that
// period is missing).
type HeadcountTrend struct {
	From          string           `json:"from"`
	To            string           `json:"to"`
	Points        []HeadcountPoint `json:"points"`
	MissingMonths []string         `json:"missing_months"`
	Latest        *int             `json:"latest"`
	Change12m     *int             `json:"change_12m"`
}

// HeadcountPoint is one social insurance period.
type HeadcountPoint struct {
	Period      string  `json:"period"`
	PeriodStart string  `json:"period_start"`
	PeriodEnd   string  `json:"period_end"`
	Headcount   int     `json:"insured_headcount"`
	PayrollBase *string `json:"payroll_base_total_yuan"`
}

// TradeFlow is a firm's imports or exports in one currency, per month,
// in that currency (no exchange rate is applied).
type TradeFlow struct {
	Direction string `json:"direction"`
	Currency  string `json:"currency"`
	Series    Series `json:"series"`
}

// ConsistencySection compares sources that should move together.
type ConsistencySection struct {
	AsOf    *time.Time          `json:"as_of"`
	Sources []string            `json:"sources"`
	Signals []ConsistencySignal `json:"signals"`
}

// Consistency signals and their statuses.
const (
	SignalRevenueVsElectricity = "revenue_vs_electricity"
	SignalHeadcountVsPayroll   = "headcount_vs_payroll"

	SignalConsistent       = "consistent"
	SignalDivergent        = "divergent"
	SignalInsufficientData = "insufficient_data"
	SignalWithheld         = "withheld"
)

// ConsistencySignal compares two growth rates over the same 12 months
// against the 12 before. Status is divergent when they differ by more
// than Threshold (a ratio: "0.2500" is 25 percentage points).
// revenue_vs_electricity compares VAT sales with electricity consumption;
// headcount_vs_payroll compares the insured headcount with the payroll
// base of the newest period and of the period 12 months earlier.
type ConsistencySignal struct {
	Name      string             `json:"name"`
	Status    string             `json:"status"`
	Reason    string             `json:"reason,omitempty"`
	From      string             `json:"from,omitempty"`
	To        string             `json:"to,omitempty"`
	Threshold string             `json:"threshold"`
	Metrics   map[string]*string `json:"metrics"`
}

// RecordKey is the position of a record in a detail listing, ordered by
// Date descending, then Kind and Key ascending.
type RecordKey struct {
	Date string // 2006-01-02
	Kind string // the source (tax.vat_return) or "patent"
	Key  string // record id, or application number for patents
}

// RecordQuery selects a page of one firm's records of one domain.
type RecordQuery struct {
	USCC string
	// DataFrom drops records dated before it (zero: no limit).
	DataFrom time.Time
	// Sources keeps only these sources (empty: all of the domain).
	Sources []string
	// From and To bound the record's date, inclusive (zero: open).
	From, To time.Time
	// Kinds and Statuses filter patents (empty: all).
	Kinds, Statuses []string
	After           *RecordKey
	Limit           int
}

// Page is one page of a detail listing; Next is nil on the last page.
type Page[T any] struct {
	Items []T
	Next  *RecordKey
}

// TaxRecord is one tax record; exactly one of the source fields is set.
// Date is the record's data date: the period's start, 1 January of a
// rating or CIT year, the arrears' as-of date.
type TaxRecord struct {
	Source       string        `json:"source"`
	RecordID     string        `json:"record_id"`
	Date         string        `json:"date"`
	ObservedAt   time.Time     `json:"observed_at"`
	VATReturn    *VATPeriod    `json:"vat_return,omitempty"`
	CITFiling    *CITFiling    `json:"cit_filing,omitempty"`
	CreditRating *CreditRating `json:"credit_rating,omitempty"`
	Arrears      *Arrear       `json:"arrears,omitempty"`
}

// PatentRecord is one patent application linked to the firm, with its
// legal events (oldest first). Held says whether the firm holds it now.
type PatentRecord struct {
	ApplicationNo   string        `json:"application_no"`
	Kind            string        `json:"kind"`
	PCT             bool          `json:"pct"`
	Title           string        `json:"title"`
	Applicants      []Party       `json:"applicants"`
	IPC             []string      `json:"ipc"`
	FilingDate      string        `json:"filing_date"`
	PublicationDate *string       `json:"publication_date"`
	GrantDate       *string       `json:"grant_date"`
	Status          string        `json:"status"`
	Held            bool          `json:"held"`
	Source          string        `json:"source"`
	ObservedAt      time.Time     `json:"observed_at"`
	Events          []PatentEvent `json:"legal_events"`
}

// PatentEvent is one legal status event.
type PatentEvent struct {
	Date       string    `json:"date"`
	Code       string    `json:"code"`
	Text       string    `json:"text"`
	From       *Party    `json:"from,omitempty"`
	To         *Party    `json:"to,omitempty"`
	RecordID   string    `json:"record_id"`
	ObservedAt time.Time `json:"observed_at"`
}

// OperationsRecord is one operations record; exactly one of the source
// fields is set. Date is the month or the period's start.
type OperationsRecord struct {
	Source          string                 `json:"source"`
	RecordID        string                 `json:"record_id"`
	Date            string                 `json:"date"`
	ObservedAt      time.Time              `json:"observed_at"`
	Electricity     *ElectricityRecord     `json:"electricity,omitempty"`
	Water           *WaterRecord           `json:"water,omitempty"`
	SocialInsurance *SocialInsuranceRecord `json:"social_insurance,omitempty"`
	Customs         *CustomsRecord         `json:"customs,omitempty"`
}

// ElectricityRecord is a grid account's month; PeakKW and Arrears are nil
// when the grid company left them empty.
type ElectricityRecord struct {
	AccountNo string  `json:"account_no"`
	Month     string  `json:"month"`
	KWh       string  `json:"consumption_kwh"`
	PeakKW    *string `json:"peak_kw"`
	Arrears   *string `json:"arrears_yuan"`
}

// WaterRecord is the water consumed in a billing period.
type WaterRecord struct {
	PeriodStart string `json:"period_start"`
	PeriodEnd   string `json:"period_end"`
	PeriodKind  string `json:"period_kind"`
	VolumeM3    string `json:"volume_m3"`
}

// SocialInsuranceRecord is the insured headcount of a period.
type SocialInsuranceRecord struct {
	PeriodStart string  `json:"period_start"`
	PeriodEnd   string  `json:"period_end"`
	PeriodKind  string  `json:"period_kind"`
	Headcount   int     `json:"insured_headcount"`
	PayrollBase *string `json:"payroll_base_total_yuan"`
}

// CustomsRecord is a month's imports or exports in one currency.
type CustomsRecord struct {
	Month     string `json:"month"`
	Direction string `json:"direction"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
}

// ProfileRequest asks for one firm's profile data: the sections Scopes
// open, without data dated before DataFrom (zero: no limit).
type ProfileRequest struct {
	USCC     string
	Scopes   []string
	DataFrom time.Time
}

// ProfileReader reads the canonical tables for profiles and detail
// listings. Every read is exact before ClickHouse merges replaced rows.
type ProfileReader interface {
	// ReadProfiles returns one profile per distinct USCC asked for, with
	// USCC, Identity and the data sections filled (the caller adds the
	// consent's fields). It runs a fixed number of queries whatever the
	// number of firms.
	ReadProfiles(ctx context.Context, reqs []ProfileRequest) (map[string]*Profile, error)
	TaxRecords(ctx context.Context, q RecordQuery) (*Page[TaxRecord], error)
	PatentRecords(ctx context.Context, q RecordQuery) (*Page[PatentRecord], error)
	OperationsRecords(ctx context.Context, q RecordQuery) (*Page[OperationsRecord], error)
}

// WithheldNotRequested is why a section the consent covers is left out of
// a batch that did not ask for it.
const WithheldNotRequested = "not_requested"

// WithheldScopeNotInToken is why a section the consent covers is left out
// when the caller's token was not granted the scopes it is made of.
const WithheldScopeNotInToken = "scope_not_in_token"

// DataFloor is the first date a consent with earliest data date dataFrom
// lets a reader see: dataFrom's date (UTC), or the day after when dataFrom
// lies after midnight, so that nothing dated before dataFrom is shown.
// It is zero when dataFrom is nil or zero (no limit).
func DataFloor(dataFrom *time.Time) time.Time {
	if dataFrom == nil || dataFrom.IsZero() {
		return time.Time{}
	}
	t := dataFrom.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if t.After(d) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}
