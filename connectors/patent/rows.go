package patent

import (
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Canonical tables of the patent domain (schema/migrations/0003_patent.sql).
const (
	TablePatents     = "patents"
	TableApplicants  = "patent_applicants"
	TableLegalEvents = "patent_legal_events"
)

// PatentRow is a patent application as last observed (patents). The
// applicant arrays are parallel: ApplicantUSCCs[i] is "" when applicant i
// has no USCC (a person, a foreign firm). IPC holds canonical symbols
// (H01M 10/42) with the main classification first; IPCSubclasses their
// distinct four-character subclasses (H01M).
type PatentRow struct {
	ApplicationNo   string
	Kind            string // invention, utility_model, design
	PCT             bool
	Title           string
	ApplicantNames  []string
	ApplicantUSCCs  []string
	IPC             []string
	IPCSubclasses   []string
	FilingDate      time.Time
	PublicationDate *time.Time
	GrantDate       *time.Time
	Status          string // pending, granted, rejected, withdrawn, lapsed, invalidated
	Lineage         firmbridge.Lineage
}

var patentColumns = connectors.WithLineage("application_no", "kind", "pct", "title", "applicant_names",
	"applicant_usccs", "ipc", "ipc_subclasses", "filing_date", "publication_date", "grant_date", "status")

// Table implements firmbridge.Row.
func (PatentRow) Table() string { return TablePatents }

// Columns implements firmbridge.Row.
func (PatentRow) Columns() []string { return patentColumns }

// Values implements firmbridge.Row.
func (r PatentRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.ApplicationNo, r.Kind, b2u(r.PCT), r.Title,
		strs(r.ApplicantNames), strs(r.ApplicantUSCCs), strs(r.IPC), strs(r.IPCSubclasses),
		r.FilingDate, r.PublicationDate, r.GrantDate, r.Status)
}

// ApplicantRow links a firm (by USCC) to a patent application it applied
// for (patent_applicants), so a firm's patents are found by USCC. Position
// is the applicant's place in the list, from 1 (the first applicant).
type ApplicantRow struct {
	USCC          string
	ApplicationNo string
	ApplicantName string
	Position      uint8
	Lineage       firmbridge.Lineage
}

var applicantColumns = connectors.WithLineage("uscc", "application_no", "applicant_name", "position")

// Table implements firmbridge.Row.
func (ApplicantRow) Table() string { return TableApplicants }

// Columns implements firmbridge.Row.
func (ApplicantRow) Columns() []string { return applicantColumns }

// Values implements firmbridge.Row.
func (r ApplicantRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.USCC, r.ApplicationNo, r.ApplicantName, r.Position)
}

// LegalEventRow is one legal status event of an application
// (patent_legal_events). USCC is the firm the provider keyed the record to
// (the envelope's uscc), "" when none was given.
type LegalEventRow struct {
	ApplicationNo string
	EventDate     time.Time
	EventCode     string // GRANT, LAPSE, INVALID, RESTORE, TRANSFER, PLEDGE, PLEDGE_RELEASE
	EventText     string
	FromParty     Party
	ToParty       Party
	USCC          string
	Lineage       firmbridge.Lineage
}

var eventColumns = connectors.WithLineage("application_no", "event_date", "event_code", "event_text",
	"from_party_name", "from_party_uscc", "to_party_name", "to_party_uscc", "uscc")

// Table implements firmbridge.Row.
func (LegalEventRow) Table() string { return TableLegalEvents }

// Columns implements firmbridge.Row.
func (LegalEventRow) Columns() []string { return eventColumns }

// Values implements firmbridge.Row.
func (r LegalEventRow) Values() []any {
	return connectors.LineageValues(r.Lineage, r.ApplicationNo, r.EventDate, r.EventCode, r.EventText,
		r.FromParty.Name, r.FromParty.USCC, r.ToParty.Name, r.ToParty.USCC, r.USCC)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
