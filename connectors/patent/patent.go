// Package patent normalizes the patent office's sources: bibliographic
// records of applications and grants, and legal status events.
package patent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Sources of the patent domain.
const (
	SourceBibliographic = "patent.bibliographic"
	SourceLegalEvent    = "patent.legal_event"
)

// Connectors returns one connector per patent source.
func Connectors() []firmbridge.Connector {
	return []firmbridge.Connector{Bibliographic{}, LegalEvent{}}
}

var v1 = []firmbridge.SchemaVersion{1}

// Field names of each source, the provider's own name first.
var (
	colApplicationNo = []string{"application_no", "申请号"}

	bibTitle      = []string{"title", "发明名称", "名称"}
	bibFilingDate = []string{"filing_date", "申请日"}
	bibApplicants = []string{"applicants", "申请人"}

	evDate = []string{"event_date", "事务数据公告日"}
	evCode = []string{"event_code", "事务数据类型"}
)

// RequiredColumns implements connectors.ColumnSource.
func (Bibliographic) RequiredColumns() [][]string {
	return [][]string{colApplicationNo, bibTitle, bibFilingDate, bibApplicants}
}

// RequiredColumns implements connectors.ColumnSource; event_text and the
// parties may be left out (a pledge or transfer without them is rejected
// record by record).
func (LegalEvent) RequiredColumns() [][]string { return [][]string{colApplicationNo, evDate, evCode} }

// Patent kinds.
const (
	KindInvention    = "invention"
	KindUtilityModel = "utility_model"
	KindDesign       = "design"
)

// Kinds maps patent types, Chinese or English, to canonical kinds.
var Kinds = connectors.NewEnum("patent kind", map[string][]string{
	KindInvention:    {"发明", "发明专利", "发明申请", "invention patent"},
	KindUtilityModel: {"实用新型", "实用新型专利", "utility model", "utility"},
	KindDesign:       {"外观设计", "外观设计专利", "外观", "industrial design"},
})

// Statuses maps application statuses to canonical ones.
var Statuses = connectors.NewEnum("patent status", map[string][]string{
	"pending":     {"申请中", "审查中", "实质审查", "实审", "公开", "已公开", "published", "under examination", "examination"},
	"granted":     {"授权", "已授权", "有效", "专利权维持", "grant", "in force", "valid"},
	"rejected":    {"驳回", "已驳回", "refused"},
	"withdrawn":   {"撤回", "视为撤回", "主动撤回", "deemed withdrawn"},
	"lapsed":      {"失效", "终止", "专利权终止", "未缴年费终止", "expired", "lapse"},
	"invalidated": {"无效", "全部无效", "宣告无效", "invalid"},
})

// Bibliographic normalizes patent.bibliographic: one JSON object per
// application, re-sent with a later observed_at when its status changes
// (a grant brings grant_date and status granted). It yields one patents
// row (the newest observation of an application number wins), one
// patent_applicants row per applicant with a USCC, and a firms row for each
// of those.
//
// Checks: the application number's check character; kind, when given, must
// match the number's type digit; a non-PCT application's filing year must be
// the number's year; publication and grant dates may not precede filing,
// and no date may lie after the record was observed; status granted needs a
// grant_date and pending, rejected and withdrawn applications cannot have
// one; every IPC symbol must parse; the envelope's uscc, when given, must be
// one of the applicants'.
type Bibliographic struct{}

// Source implements firmbridge.Connector.
func (Bibliographic) Source() string { return SourceBibliographic }

// SchemaVersions implements firmbridge.Connector.
func (Bibliographic) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c Bibliographic) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (Bibliographic) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	app := readApplicationNo(r, colApplicationNo...)
	kind := ""
	if r.Text("kind", "专利类型") != "" {
		kind = r.Enum(Kinds, "kind", "专利类型")
	}
	title := r.RequiredText(bibTitle...)
	filed := r.Date(bibFilingDate...)
	published := r.OptionalDate("publication_date", "公开日")
	granted := r.OptionalDate("grant_date", "授权公告日")
	status := "pending"
	if r.Text("status", "法律状态") != "" {
		status = r.Enum(Statuses, "status", "法律状态")
	} else if granted != nil {
		status = "granted"
	}
	applicants := readApplicants(r, f)
	ipcs, subclasses := readIPC(r, f)
	if err := r.Err(); err != nil {
		return nil, err
	}

	if kind == "" {
		kind = app.Kind()
	} else if kind != app.Kind() {
		r.Fail(firmbridge.RejectInconsistentData, "kind", "kind %s does not match application number %s, which is a %s", kind, app, app.Kind())
	}
	if !r.Failed() && !app.PCT() && filed.Year() != app.Year {
		r.Fail(firmbridge.RejectInconsistentData, "filing_date", "filing_date %s is not in %d, the year of application number %s",
			filed.Format("2006-01-02"), app.Year, app)
	}
	r.NotFuture("filing_date", filed, env.ObservedAt)
	for _, d := range []struct {
		name string
		t    *time.Time
	}{{"publication_date", published}, {"grant_date", granted}} {
		if d.t == nil || r.Failed() {
			continue
		}
		if d.t.Before(filed) {
			r.Fail(firmbridge.RejectInconsistentData, d.name, "%s %s is before filing_date %s", d.name, d.t.Format("2006-01-02"), filed.Format("2006-01-02"))
		}
		r.NotFuture(d.name, *d.t, env.ObservedAt)
	}
	switch {
	case r.Failed():
	case status == "granted" && granted == nil:
		r.Fail(firmbridge.RejectMissingField, "grant_date", "grant_date is required for a granted patent")
	case granted != nil && (status == "pending" || status == "rejected" || status == "withdrawn"):
		r.Fail(firmbridge.RejectInconsistentData, "status", "status %s contradicts grant_date %s", status, granted.Format("2006-01-02"))
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := matchApplicant(env, applicants); err != nil {
		return nil, err
	}

	p := PatentRow{
		ApplicationNo: app.String(), Kind: kind, PCT: app.PCT(), Title: title,
		IPC: ipcs, IPCSubclasses: subclasses,
		FilingDate: filed, PublicationDate: published, GrantDate: granted, Status: status, Lineage: l,
	}
	// Sized once: a patents row, then an applicant and a firm row per
	// applicant with a USCC.
	rows := make([]firmbridge.Row, 1, 1+2*len(applicants))
	if len(applicants) > 0 {
		p.ApplicantNames = make([]string, 0, len(applicants))
		p.ApplicantUSCCs = make([]string, 0, len(applicants))
	}
	for i, a := range applicants {
		p.ApplicantNames = append(p.ApplicantNames, a.Name)
		p.ApplicantUSCCs = append(p.ApplicantUSCCs, a.USCC)
		if a.USCC == "" {
			continue
		}
		rows = append(rows,
			ApplicantRow{USCC: a.USCC, ApplicationNo: p.ApplicationNo, ApplicantName: a.Name, Position: uint8(min(i+1, 255)), Lineage: l},
			connectors.FirmRow{USCC: a.USCC, Name: a.Name, Lineage: l})
	}
	rows[0] = p
	return rows, nil
}

func readApplicationNo(r *connectors.Reader, names ...string) ApplicationNo {
	if r.Failed() {
		return ApplicationNo{}
	}
	raw := r.Fields.Get(names...)
	a, err := ParseApplicationNo(raw)
	switch {
	case errors.Is(err, connectors.ErrMissing):
		r.Fail(firmbridge.RejectMissingField, names[0], "%s is required", names[0])
	case err != nil:
		r.Fail(firmbridge.RejectInvalidPatentNo, names[0], "%s", err.Error())
	}
	return a
}

// readApplicants reads applicants given as a JSON array of objects
// ({"name", "uscc"}), a JSON array of strings ("name(uscc)"), or one string
// of parties separated by ; or ；. Repeated USCCs are kept once.
func readApplicants(r *connectors.Reader, f connectors.Fields) []Party {
	if r.Failed() {
		return nil
	}
	raw, ok := f.Raw(bibApplicants...)
	if !ok || len(raw) == 0 || raw[0] != '[' {
		return readApplicantsRef(r, f)
	}
	items, ok := scanApplicants(raw)
	if !ok {
		return readApplicantsRef(r, f)
	}
	const field = "applicants"
	out := make([]Party, 0, len(items))
	for i, item := range items {
		p, ok := applicant(r, i, item.obj, item.fields, item.text)
		if !ok {
			return nil
		}
		// A repeated USCC is kept once; the list is short enough to search.
		if p.USCC != "" && slices.ContainsFunc(out, func(q Party) bool { return q.USCC == p.USCC }) {
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		r.Fail(firmbridge.RejectMissingField, field, "at least one applicant is required")
		return nil
	}
	return out
}

// applicant reads applicant i of the applicants field: an object's fields
// when obj, else a "name(uscc)" text. It fails r and reports false when
// the applicant is not valid.
func applicant(r *connectors.Reader, i int, obj bool, fields connectors.Fields, text string) (Party, bool) {
	const field = "applicants"
	var p Party
	if obj {
		sub := connectors.NewReader(fields)
		p.Name = sub.Name("name", "名称", "申请人名称")
		p.USCC = sub.OptionalUSCC("uscc", "统一社会信用代码")
		if rej := sub.Err(); rej != nil {
			var rj *firmbridge.Reject
			errors.As(rej, &rj)
			r.Fail(rj.Code, fmt.Sprintf("%s[%d].%s", field, i, rj.Field), "%s", rj.Message)
			return Party{}, false
		}
	} else {
		var err error
		if p, err = ParseParty(text); err != nil {
			r.Fail(firmbridge.RejectInvalidUSCC, fmt.Sprintf("%s[%d]", field, i), "%s", err.Error())
			return Party{}, false
		}
	}
	if p.Name == "" {
		r.Fail(firmbridge.RejectMissingField, fmt.Sprintf("%s[%d].name", field, i), "applicant %d has no name", i)
		return Party{}, false
	}
	return p, true
}

// readApplicantsRef is readApplicants decoding the JSON with encoding/json,
// each applicant object as a record of its own.
func readApplicantsRef(r *connectors.Reader, f connectors.Fields) []Party {
	if r.Failed() {
		return nil
	}
	const field = "applicants"
	raw, ok := f.Raw(bibApplicants...)
	var items []json.RawMessage
	if ok && len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &items); err != nil {
			r.Fail(firmbridge.RejectInvalidPayload, field, "applicants is not a JSON array")
			return nil
		}
	} else {
		s := f.Get(bibApplicants...)
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '；' }) {
			b, _ := json.Marshal(part)
			items = append(items, b)
		}
	}
	var out []Party
	seen := map[string]bool{}
	for i, item := range items {
		var p Party
		var ok bool
		if t := strings.TrimSpace(string(item)); strings.HasPrefix(t, "{") {
			p, ok = applicant(r, i, true, mustFields(item), "")
		} else {
			var s string
			if json.Unmarshal(item, &s) != nil {
				r.Fail(firmbridge.RejectInvalidPayload, field, "applicant %d is neither an object nor a string", i)
				return nil
			}
			p, ok = applicant(r, i, false, connectors.Fields{}, s)
		}
		if !ok {
			return nil
		}
		if p.USCC != "" {
			if seen[p.USCC] {
				continue
			}
			seen[p.USCC] = true
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		r.Fail(firmbridge.RejectMissingField, field, "at least one applicant is required")
	}
	return out
}

func mustFields(obj json.RawMessage) connectors.Fields {
	f, err := connectors.DecodeRecord(firmbridge.Envelope{Payload: obj})
	if err != nil {
		return connectors.Fields{}
	}
	return f
}

// readIPC reads IPC symbols from a JSON array of strings or one string
// separated by ; , or ；. The first symbol stays first (main classification).
func readIPC(r *connectors.Reader, f connectors.Fields) (ipcs, subclasses []string) {
	if r.Failed() {
		return nil, nil
	}
	var items []string
	if raw, ok := f.Raw("ipc", "分类号"); ok && len(raw) > 0 && raw[0] == '[' {
		if items, ok = scanStrings(raw); !ok {
			return readIPCRef(r, f)
		}
	} else {
		items = strings.FieldsFunc(f.Get("ipc", "分类号"), func(r rune) bool { return r == ';' || r == '；' || r == ',' || r == '，' })
	}
	return ipcsOf(r, items)
}

// readIPCRef is readIPC decoding a JSON array with encoding/json.
func readIPCRef(r *connectors.Reader, f connectors.Fields) (ipcs, subclasses []string) {
	if r.Failed() {
		return nil, nil
	}
	var items []string
	if raw, ok := f.Raw("ipc", "分类号"); ok && len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &items); err != nil {
			r.Fail(firmbridge.RejectInvalidPayload, "ipc", "ipc is not a JSON array of strings")
			return nil, nil
		}
	} else {
		items = strings.FieldsFunc(f.Get("ipc", "分类号"), func(r rune) bool { return r == ';' || r == '；' || r == ',' || r == '，' })
	}
	return ipcsOf(r, items)
}

// ipcsOf parses IPC symbols into their canonical forms and subclasses.
func ipcsOf(r *connectors.Reader, items []string) (ipcs, subclasses []string) {
	for i, s := range items {
		if connectors.Fold(s) == "" {
			continue
		}
		c, err := ParseIPC(s)
		if err != nil {
			r.Fail(firmbridge.RejectInvalidPayload, fmt.Sprintf("ipc[%d]", i), "%s", err.Error())
			return nil, nil
		}
		if cs := c.String(); !slices.Contains(ipcs, cs) {
			ipcs = append(ipcs, cs)
		}
		if sc := c.SubclassCode(); !slices.Contains(subclasses, sc) {
			subclasses = append(subclasses, sc)
		}
	}
	return ipcs, subclasses
}

func matchApplicant(env firmbridge.Envelope, applicants []Party) error {
	u, err := connectors.EnvelopeUSCC(env)
	if err != nil || u == "" {
		return err
	}
	var have []string
	for _, a := range applicants {
		if a.USCC == u {
			return nil
		}
		if a.USCC != "" {
			have = append(have, a.USCC)
		}
	}
	return &firmbridge.Reject{Code: firmbridge.RejectUSCCMismatch, Field: "uscc",
		Message: fmt.Sprintf("envelope uscc %s is not among the applicants' USCCs [%s]", u, strings.Join(have, ", "))}
}

// EventCodes maps legal status events, as codes or as the office's Chinese
// event names, to canonical codes.
var EventCodes = connectors.NewEnum("legal event code", map[string][]string{
	"GRANT":          {"授权", "专利权授予", "授予专利权", "granted"},
	"LAPSE":          {"未缴年费专利权终止", "专利权终止", "专利权的终止", "终止", "lapsed"},
	"INVALID":        {"无效宣告", "专利权无效", "宣告专利权无效", "宣告无效", "invalidation", "invalidated"},
	"RESTORE":        {"恢复", "专利权的恢复", "权利恢复", "restoration"},
	"TRANSFER":       {"转让", "专利权的转移", "专利申请权、专利权的转移", "权利转移", "assignment"},
	"PLEDGE":         {"质押", "专利权质押合同登记的生效", "质押登记"},
	"PLEDGE_RELEASE": {"质押注销", "解除质押", "专利权质押合同登记的注销", "pledge released"},
})

// LegalEvent normalizes patent.legal_event: one CSV line (UTF-8) per event,
// header application_no,event_date,event_code,event_text,from_party,to_party.
// Parties are parsed with ParseParty. PLEDGE and TRANSFER need both
// parties (for a pledge, from_party is the pledgor and to_party the
// pledgee bank). Each party with a USCC also yields a firms row. When the
// envelope carries a uscc and any party has a USCC, the envelope's must be
// one of them (RejectUSCCMismatch); events without parties (GRANT, LAPSE)
// are keyed by whatever firm the provider chose. The event date may not lie
// after the record was observed, nor before the application's year.
type LegalEvent struct{}

// Source implements firmbridge.Connector.
func (LegalEvent) Source() string { return SourceLegalEvent }

// SchemaVersions implements firmbridge.Connector.
func (LegalEvent) SchemaVersions() []firmbridge.SchemaVersion { return v1 }

// Normalize implements firmbridge.Connector.
func (c LegalEvent) Normalize(_ context.Context, env firmbridge.Envelope, ingestedAt time.Time) ([]firmbridge.Row, error) {
	return connectors.NormalizeRecord(c, env, ingestedAt)
}

// NormalizeFields implements connectors.FieldsConnector.
func (LegalEvent) NormalizeFields(env firmbridge.Envelope, l firmbridge.Lineage, f connectors.Fields) ([]firmbridge.Row, error) {
	r := connectors.NewReader(f)
	app := readApplicationNo(r, colApplicationNo...)
	date := r.Date(evDate...)
	code := r.Enum(EventCodes, evCode...)
	text := r.Text("event_text", "事务数据信息")
	from := readParty(r, "from_party")
	to := readParty(r, "to_party")
	keyed, kerr := connectors.EnvelopeUSCC(env)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if kerr != nil {
		return nil, kerr
	}
	if code == "PLEDGE" || code == "TRANSFER" {
		if from.Name == "" {
			r.Fail(firmbridge.RejectMissingField, "from_party", "from_party is required for %s", code)
		}
		if to.Name == "" {
			r.Fail(firmbridge.RejectMissingField, "to_party", "to_party is required for %s", code)
		}
	}
	r.NotFuture("event_date", date, env.ObservedAt)
	if !r.Failed() && date.Year() < app.Year {
		r.Fail(firmbridge.RejectInconsistentData, "event_date", "event_date %s is before the year of application %s", date.Format("2006-01-02"), app)
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if keyed != "" && (from.USCC != "" || to.USCC != "") && keyed != from.USCC && keyed != to.USCC {
		return nil, &firmbridge.Reject{Code: firmbridge.RejectUSCCMismatch, Field: "uscc",
			Message: fmt.Sprintf("envelope uscc %s is neither party's USCC", keyed)}
	}
	return connectors.Rows(
		LegalEventRow{ApplicationNo: app.String(), EventDate: date, EventCode: code, EventText: text,
			FromParty: from, ToParty: to, USCC: keyed, Lineage: l},
		connectors.Firm(from.USCC, from.Name, l),
		connectors.Firm(to.USCC, to.Name, l),
	), nil
}

func readParty(r *connectors.Reader, field string) Party {
	if r.Failed() {
		return Party{}
	}
	p, err := ParseParty(r.Fields.Get(field))
	if err != nil {
		r.Fail(firmbridge.RejectInvalidUSCC, field, "%s: %s", field, err.Error())
	}
	return p
}
