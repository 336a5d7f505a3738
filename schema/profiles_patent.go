package schema

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/firmbridge/firmbridge"
)

// Patent legal event codes the profile reads.
const (
	eventTransfer      = "TRANSFER"
	eventPledge        = "PLEDGE"
	eventPledgeRelease = "PLEDGE_RELEASE"
)

// How many recent grants and IPC subclasses a profile lists.
const (
	recentGrants = 10
	topIPC       = 5
)

// patentBranch reads applications (schema/migrations/0003_patent.sql).
// Patents are keyed by application number and carry no firm column: a
// firm's applications are those whose newest record lists its USCC among
// the applicants, plus those a transfer names it in.
var patentBranch = branch{kind: kindPatent, table: "patents", firm: "''", key: "application_no", date: "filing_date",
	fields: []string{str("kind"), str("pct"), str("title"), opt("publication_date"), opt("grant_date"), str("status")},
	lists:  []string{"applicant_names", "applicant_usccs", "ipc", "ipc_subclasses"}}

// eventBranch reads legal status events; uscc is the firm the provider
// keyed the event to.
var eventBranch = branch{kind: kindEvent, table: "patent_legal_events", firm: "''", key: "record_id", date: "event_date",
	fields: []string{"application_no", str("event_code"), "event_text", "from_party_name", "from_party_uscc",
		"to_party_name", "to_party_uscc", "uscc"}}

// Candidate applications of firms, by row (any version; the newest is
// checked afterwards): applied for, or named in a transfer.
const (
	appliedBy     = "application_no IN (SELECT application_no FROM patent_applicants WHERE uscc IN ?)"
	transferNames = "application_no IN (SELECT application_no FROM patent_legal_events WHERE event_code = 'TRANSFER' AND (from_party_uscc IN ? OR to_party_uscc IN ?))"
)

// patentProfileRecords reads the applications and legal events of firms
// in one query. Both are read whatever their date: whether a firm still
// holds a patent, and so whether a pledge on it concerns the firm,
// depends on records of any date, though only applications filed and
// events that happened on or after a firm's floor are shown.
//
// It reads the copies of migration 0007 and selects the same rows as the
// branches read from their tables: applications appliedBy or
// transferNames the firms (patent_links 1 and 2), with the events of
// those applications and the events keyed to or naming a firm (fields 8,
// 5 and 7: uscc, from_party_uscc, to_party_uscc). patent_links names every
// application one of those events is about (link 3), so the first
// condition, which lets the primary key find the rows, drops none of them.
func (s ProfileReader) patentProfileRecords(ctx context.Context, g profileGroup) ([]record, error) {
	us := set(g.usccs)
	const sql = "SELECT rkind, '' AS firm, rkey, argMax(data_date, version) AS d, argMax(fields, version) AS f, argMax(lists, version) AS l, " +
		"argMax(source, version) AS src, argMax(observed_at, version) AS obs FROM patent_records " +
		"WHERE application_no IN (SELECT application_no FROM patent_links WHERE firm IN ?) " +
		"AND (application_no IN (SELECT application_no FROM patent_links WHERE firm IN ? AND link IN (1, 2)) " +
		"OR (rkind = '" + kindEvent + "' AND (fields[8] IN ? OR fields[5] IN ? OR fields[7] IN ?))) GROUP BY rkind, firm, rkey"
	return s.query(ctx, "patents", sql, []any{us, us, us, us, us})
}

type patentRow struct {
	r       firmbridge.PatentRecord
	filing  time.Time
	grant   *time.Time
	usccs   []string
	classes []string
	rec     record
}

type eventRow struct {
	e        firmbridge.PatentEvent
	app      string
	code     string
	date     time.Time
	from, to firmbridge.Party
	keyed    string
	rec      record
}

// patentData is decoded applications and events, indexed by firm.
type patentData struct {
	patents map[string]*patentRow
	events  map[string][]*eventRow // by application, oldest first
	byFirm  map[string][]*eventRow // events naming or keyed to a firm
	apps    map[string][]string    // applications whose newest record lists the firm
}

func decodePatents(recs []record) (*patentData, error) {
	pd := &patentData{patents: map[string]*patentRow{}, events: map[string][]*eventRow{},
		byFirm: map[string][]*eventRow{}, apps: map[string][]string{}}
	for _, r := range recs {
		fr := &fieldReader{r: r}
		switch r.kind {
		case kindPatent:
			p := &patentRow{filing: r.date, grant: fr.optDate(4), usccs: fr.list(1), classes: fr.list(3), rec: r}
			names := fr.list(0)
			p.r = firmbridge.PatentRecord{ApplicationNo: r.key, Kind: fr.text(0), PCT: fr.text(1) == "1", Title: fr.text(2),
				Applicants: []firmbridge.Party{}, IPC: fr.list(2), FilingDate: r.date.Format(dateLayout), Status: fr.text(5),
				Source: r.source, ObservedAt: r.observed.UTC(), Events: []firmbridge.PatentEvent{}}
			if p.r.IPC == nil {
				p.r.IPC = []string{}
			}
			for i, n := range names {
				a := firmbridge.Party{Name: n}
				if i < len(p.usccs) {
					a.USCC = p.usccs[i]
				}
				p.r.Applicants = append(p.r.Applicants, a)
			}
			if d := fr.optDate(3); d != nil {
				s := d.Format(dateLayout)
				p.r.PublicationDate = &s
			}
			if p.grant != nil {
				s := p.grant.Format(dateLayout)
				p.r.GrantDate = &s
			}
			pd.patents[r.key] = p
			for _, u := range p.usccs {
				if u != "" {
					pd.apps[u] = append(pd.apps[u], r.key)
				}
			}
		case kindEvent:
			e := &eventRow{app: fr.text(0), code: fr.text(1), date: r.date, keyed: fr.text(7), rec: r,
				from: firmbridge.Party{Name: fr.text(3), USCC: fr.text(4)}, to: firmbridge.Party{Name: fr.text(5), USCC: fr.text(6)}}
			e.e = firmbridge.PatentEvent{Date: r.date.Format(dateLayout), Code: e.code, Text: fr.text(2), RecordID: r.key, ObservedAt: r.observed.UTC()}
			if e.from.Name != "" {
				f := e.from
				e.e.From = &f
			}
			if e.to.Name != "" {
				t := e.to
				e.e.To = &t
			}
			pd.events[e.app] = append(pd.events[e.app], e)
			for _, u := range []string{e.keyed, e.from.USCC, e.to.USCC} {
				if u != "" && (len(pd.byFirm[u]) == 0 || pd.byFirm[u][len(pd.byFirm[u])-1] != e) {
					pd.byFirm[u] = append(pd.byFirm[u], e)
				}
			}
		}
		if fr.err != nil {
			return nil, fr.err
		}
	}
	for _, es := range pd.events {
		sort.Slice(es, func(i, j int) bool { return eventBefore(es[i], es[j]) })
	}
	return pd, nil
}

func eventBefore(a, b *eventRow) bool {
	if !a.date.Equal(b.date) {
		return a.date.Before(b.date)
	}
	if !a.rec.observed.Equal(b.rec.observed) {
		return a.rec.observed.Before(b.rec.observed)
	}
	return a.rec.key < b.rec.key
}

// candidates are the applications linked to firm u: applied for (newest
// record) or named in a transfer.
func (pd *patentData) candidates(u string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range pd.apps[u] {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, e := range pd.byFirm[u] {
		if e.code == eventTransfer && (e.from.USCC == u || e.to.USCC == u) && !seen[e.app] {
			seen[e.app] = true
			out = append(out, e.app)
		}
	}
	sort.Strings(out)
	return out
}

// held says whether firm u holds application app now: the newest
// transfer naming u decides; without one, being an applicant does.
func (pd *patentData) held(u, app string) bool {
	p := pd.patents[app]
	h := p != nil && slices.Contains(p.usccs, u)
	for _, e := range pd.events[app] {
		if e.code != eventTransfer {
			continue
		}
		switch {
		case e.to.USCC == u:
			h = true
		case e.from.USCC == u:
			h = false
		}
	}
	return h
}

func pledgeeKey(p firmbridge.Party) string {
	if p.USCC != "" {
		return "uscc:" + p.USCC
	}
	return "name:" + p.Name
}

// section builds firm u's patent section, showing nothing dated before
// floor: applications filed before it and events that happened before it.
func (pd *patentData) section(u string, floor time.Time) *firmbridge.PatentSection {
	var lin lineage
	sec := &firmbridge.PatentSection{
		Counts:       firmbridge.PatentCounts{ByKind: map[string]int{}, ByStatus: map[string]int{}, ByKindStatus: map[string]map[string]int{}},
		RecentGrants: []firmbridge.PatentGrant{}, TopIPC: []firmbridge.IPCCount{}, ActivePledges: []firmbridge.Pledge{},
		Pledgees: []firmbridge.Pledgee{}, Transfers: []firmbridge.Transfer{},
	}
	shown := func(t time.Time) bool { return floor.IsZero() || !t.Before(floor) }
	cands := pd.candidates(u)
	held := map[string]bool{}
	classes := map[string]int{}
	var grants []*patentRow
	for _, app := range cands {
		p := pd.patents[app]
		h := pd.held(u, app)
		held[app] = h
		if p == nil || !shown(p.filing) {
			continue
		}
		if !h {
			sec.Counts.TransferredOut++
			continue
		}
		lin.add(p.rec)
		sec.Counts.Total++
		sec.Counts.ByKind[p.r.Kind]++
		sec.Counts.ByStatus[p.r.Status]++
		if sec.Counts.ByKindStatus[p.r.Kind] == nil {
			sec.Counts.ByKindStatus[p.r.Kind] = map[string]int{}
		}
		sec.Counts.ByKindStatus[p.r.Kind][p.r.Status]++
		for _, c := range p.classes {
			classes[c]++
		}
		if p.grant != nil {
			grants = append(grants, p)
		}
	}
	sort.Slice(grants, func(i, j int) bool {
		if !grants[i].grant.Equal(*grants[j].grant) {
			return grants[i].grant.After(*grants[j].grant)
		}
		return grants[i].r.ApplicationNo < grants[j].r.ApplicationNo
	})
	for _, p := range grants[:min(len(grants), recentGrants)] {
		g := firmbridge.PatentGrant{ApplicationNo: p.r.ApplicationNo, Kind: p.r.Kind, Title: p.r.Title, GrantDate: *p.r.GrantDate}
		if len(p.r.IPC) > 0 {
			g.MainIPC = p.r.IPC[0]
		}
		sec.RecentGrants = append(sec.RecentGrants, g)
	}
	for c, n := range classes {
		sec.TopIPC = append(sec.TopIPC, firmbridge.IPCCount{Subclass: c, Patents: n})
	}
	sort.Slice(sec.TopIPC, func(i, j int) bool {
		if sec.TopIPC[i].Patents != sec.TopIPC[j].Patents {
			return sec.TopIPC[i].Patents > sec.TopIPC[j].Patents
		}
		return sec.TopIPC[i].Subclass < sec.TopIPC[j].Subclass
	})
	sec.TopIPC = sec.TopIPC[:min(len(sec.TopIPC), topIPC)]

	// Pledges and transfers of the firm's applications, and those naming
	// the firm as a party; each event once.
	apps := map[string]bool{}
	for _, a := range cands {
		apps[a] = true
	}
	for _, e := range pd.byFirm[u] {
		if e.code == eventPledge && e.from.USCC == u {
			apps[e.app] = true
		}
	}
	pledgees := map[string]*firmbridge.Pledgee{}
	appList := make([]string, 0, len(apps))
	for a := range apps {
		appList = append(appList, a)
	}
	sort.Strings(appList)
	for _, app := range appList {
		active := map[string]*eventRow{}
		for _, e := range pd.events[app] {
			if !shown(e.date) {
				continue
			}
			switch e.code {
			case eventPledge:
				if held[app] || e.from.USCC == u {
					active[pledgeeKey(e.to)] = e
				}
			case eventPledgeRelease:
				if e.to.Name == "" && e.to.USCC == "" {
					clear(active) // a release naming no pledgee releases them all
				} else {
					delete(active, pledgeeKey(e.to))
				}
				if held[app] {
					lin.add(e.rec)
				}
			case eventTransfer:
				dir := ""
				switch {
				case e.to.USCC == u:
					dir = "in"
				case e.from.USCC == u:
					dir = "out"
				case slices.Contains(cands, app):
					dir = "unknown" // the parties carry no USCC
				default:
					continue
				}
				sec.Transfers = append(sec.Transfers, firmbridge.Transfer{ApplicationNo: app, Date: e.e.Date, Direction: dir,
					From: e.from, To: e.to, RecordID: e.rec.key})
				lin.add(e.rec)
			}
		}
		for k, e := range active {
			sec.ActivePledges = append(sec.ActivePledges, firmbridge.Pledge{ApplicationNo: app, PledgedOn: e.e.Date,
				Pledgor: e.from, Pledgee: e.to, RecordID: e.rec.key})
			lin.add(e.rec)
			if pledgees[k] == nil {
				pledgees[k] = &firmbridge.Pledgee{Party: e.to}
			}
			pledgees[k].ActivePledges++
		}
	}
	sort.Slice(sec.ActivePledges, func(i, j int) bool {
		a, b := sec.ActivePledges[i], sec.ActivePledges[j]
		if a.PledgedOn != b.PledgedOn {
			return a.PledgedOn > b.PledgedOn
		}
		if a.ApplicationNo != b.ApplicationNo {
			return a.ApplicationNo < b.ApplicationNo
		}
		return a.RecordID < b.RecordID
	})
	for _, p := range pledgees {
		sec.Pledgees = append(sec.Pledgees, *p)
	}
	sort.Slice(sec.Pledgees, func(i, j int) bool {
		a, b := sec.Pledgees[i], sec.Pledgees[j]
		if a.ActivePledges != b.ActivePledges {
			return a.ActivePledges > b.ActivePledges
		}
		return pledgeeKey(a.Party) < pledgeeKey(b.Party)
	})
	sort.SliceStable(sec.Transfers, func(i, j int) bool {
		a, b := sec.Transfers[i], sec.Transfers[j]
		if a.Date != b.Date {
			return a.Date > b.Date
		}
		return a.RecordID < b.RecordID
	})
	sec.AsOf, sec.Sources = lin.result()
	return sec
}

// PatentRecords implements firmbridge.ProfileReader: one query for the
// page of applications, one for their legal events.
func (s ProfileReader) PatentRecords(ctx context.Context, q firmbridge.RecordQuery) (*firmbridge.Page[firmbridge.PatentRecord], error) {
	us := set([]string{q.USCC})
	having := append(recordFilters(q), cond{"has(l[2], ?) OR rkey IN (SELECT application_no FROM patent_legal_events " +
		"WHERE event_code = 'TRANSFER' AND (from_party_uscc = ? OR to_party_uscc = ?))", []any{q.USCC, q.USCC, q.USCC}})
	if len(q.Kinds) > 0 {
		having = append(having, cond{"f[1] IN ?", []any{set(q.Kinds)}})
	}
	if len(q.Statuses) > 0 {
		having = append(having, cond{"f[6] IN ?", []any{set(q.Statuses)}})
	}
	p, pa := patentBranch.sql(cond{appliedBy + " OR " + transferNames, []any{us, us, us}}, having)
	recs, next, err := s.page(ctx, "patent records", []string{p}, [][]any{pa}, q)
	if err != nil {
		return nil, err
	}
	page := &firmbridge.Page[firmbridge.PatentRecord]{Items: []firmbridge.PatentRecord{}, Next: next}
	if len(recs) == 0 {
		return page, nil
	}
	apps := make([]string, len(recs))
	for i, r := range recs {
		apps[i] = r.key
	}
	e, ea := eventBranch.sql(cond{"application_no IN ?", []any{set(apps)}}, nil)
	events, err := s.query(ctx, "patent events", e, ea)
	if err != nil {
		return nil, err
	}
	pd, err := decodePatents(append(slices.Clone(recs), events...))
	if err != nil {
		return nil, err
	}
	floor := dataFloor(q.DataFrom)
	for _, r := range recs {
		p := pd.patents[r.key]
		item := p.r
		item.Held = pd.held(q.USCC, r.key)
		for _, e := range pd.events[r.key] {
			if floor.IsZero() || !e.date.Before(floor) {
				item.Events = append(item.Events, e.e)
			}
		}
		page.Items = append(page.Items, item)
	}
	return page, nil
}
