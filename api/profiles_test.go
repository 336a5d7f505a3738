package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

const (
	profFirm     = "91350100M000100Y43"
	profFirmName = "福州某某科技有限公司"
)

// profAudit keeps access events in memory, or fails every write.
type profAudit struct {
	mu     sync.Mutex
	fail   atomic.Bool
	events []*firmbridge.AccessEvent
}

func (a *profAudit) Record(_ context.Context, e *firmbridge.AccessEvent) error {
	if a.fail.Load() {
		return errors.New("audit log down")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func (a *profAudit) since(n int) []*firmbridge.AccessEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events[n:])
}

func (a *profAudit) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

// countingReader and countingConsents count the calls a request makes.
type countingReader struct {
	firmbridge.ProfileReader
	reads atomic.Int64
}

func (c *countingReader) ReadProfiles(ctx context.Context, reqs []firmbridge.ProfileRequest) (map[string]*firmbridge.Profile, error) {
	c.reads.Add(1)
	return c.ProfileReader.ReadProfiles(ctx, reqs)
}

type countingConsents struct {
	firmbridge.ConsentStore
	reads atomic.Int64
}

func (c *countingConsents) ConsentsForGrantee(ctx context.Context, grantee, uscc string) ([]*firmbridge.Consent, error) {
	c.reads.Add(1)
	return c.ConsentStore.ConsentsForGrantee(ctx, grantee, uscc)
}

type profEnv struct {
	handler  http.Handler
	tokens   *api.Tokens
	audit    *profAudit
	store    *schema.Store
	reader   *countingReader
	consents *countingConsents
}

func newProfEnv(t *testing.T) *profEnv {
	t.Helper()
	store := testenv.Store(t)
	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &profEnv{tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key}, audit: &profAudit{}, store: store,
		reader: &countingReader{ProfileReader: schema.ProfileReader{Store: store}}, consents: &countingConsents{ConsentStore: schema.ConsentStore{Store: store}}}
	srv := &api.Server{Tokens: e.tokens, Consents: e.consents, Profiles: e.reader, Audit: e.audit,
		Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	e.handler = srv.Handler()
	e.load(t)
	return e
}

func pdate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// load stores, through the connectors, 18 months of VAT returns
// (2023-01 to 2024-06, 10,000.00 yuan of sales each), two arrears
// figures, a patent with a pledge, and electricity for the same months.
func (e *profEnv) load(t *testing.T) {
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	var rows []firmbridge.Row
	add := func(env firmbridge.Envelope) {
		r, err := reg.Normalize(context.Background(), env, env.ObservedAt)
		if err != nil {
			t.Fatalf("normalize %s: %v", env.RecordID, err)
		}
		rows = append(rows, r...)
	}
	line := func(fields ...string) json.RawMessage {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write(fields)
		w.Flush()
		out, _ := json.Marshal(strings.TrimSpace(b.String()))
		return out
	}
	for m := pdate(2023, 1, 1); !m.After(pdate(2024, 6, 1)); m = m.AddDate(0, 1, 0) {
		observed := m.AddDate(0, 1, 12)
		add(firmbridge.Envelope{RecordID: "VAT-" + m.Format("200601"), Source: "tax.vat_return", SchemaVersion: 1, USCC: profFirm, ObservedAt: observed,
			Header: synth.HeaderVATReturn, Payload: line(profFirm, profFirmName, m.Format("2006-01-02"), m.AddDate(0, 1, -1).Format("2006-01-02"),
				m.AddDate(0, 1, 9).Format("2006-01-02"), "10,000.00", "1300.00", "0.00", "1300.00", "元")})
		add(firmbridge.Envelope{RecordID: "EL-" + m.Format("200601"), Source: "ops.electricity", SchemaVersion: 1, USCC: profFirm, ObservedAt: observed,
			Header: synth.HeaderElectricity, Payload: line("0591000001", profFirm, m.Format("2006-01"), "500", "kWh", "", "")})
	}
	for _, a := range []struct{ id, asOf, amount string }{{"QS-1", "2023/12/31", "1,000.00"}, {"QS-2", "2024/03/31", "2,000.00"}} {
		p, _ := json.Marshal(map[string]any{"uscc": profFirm, "as_of": a.asOf, "tax_type": "增值税", "amount_owed": a.amount})
		add(firmbridge.Envelope{RecordID: a.id, Source: "tax.arrears", SchemaVersion: 1, USCC: profFirm, ObservedAt: pdate(2024, 4, 10), Payload: p})
	}
	p, _ := json.Marshal(map[string]any{"application_no": "201710601862.3", "kind": "发明", "title": "一种电池管理方法",
		"applicants": []map[string]string{{"name": profFirmName, "uscc": profFirm}}, "ipc": []string{"H01M 10/42"},
		"filing_date": "20171020", "grant_date": "20190301", "status": "granted"})
	add(firmbridge.Envelope{RecordID: "BIB-1", Source: "patent.bibliographic", SchemaVersion: 1, USCC: profFirm, ObservedAt: pdate(2019, 3, 10), Payload: p})
	add(firmbridge.Envelope{RecordID: "LE-1", Source: "patent.legal_event", SchemaVersion: 1, USCC: profFirm, ObservedAt: pdate(2024, 2, 10),
		Header: synth.HeaderLegalEvent, Payload: line("201710601862.3", "2024-02-01", "PLEDGE", "质押", profFirmName+"("+profFirm+")", "某某银行股份有限公司")})
	if err := e.store.InsertRows(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

// consent stores a consent directly, as the consent service would.
func (e *profEnv) consent(t *testing.T, uscc, bank, purpose, status string, scopes []string, dataFrom *time.Time, expires time.Time) string {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	c := &firmbridge.Consent{ID: "c-" + testenv.Suffix(), USCC: uscc, Grantee: bank, Scopes: scopes, Purpose: purpose, Status: status,
		ValidFrom: now.Add(-48 * time.Hour), ExpiresAt: expires, DataFrom: dataFrom, CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now,
		UpdatedBy: "tester", Version: firmbridge.VersionOf(time.Now())}
	if err := e.consents.SaveConsent(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (e *profEnv) do(t *testing.T, method, path, token string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func (e *profEnv) bank(t *testing.T, org string) string {
	t.Helper()
	tok, err := e.tokens.Issue("officer@"+org, firmbridge.RoleBank, org, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) {
	t.Helper()
	p := decode[api.Problem](t, rec, status)
	if p.Code != code || p.Field != field || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("problem %+v (%s), want code %s field %q", p, rec.Header().Get("Content-Type"), code, field)
	}
}

var profDateLike = regexp.MustCompile(`^\d{4}-\d{2}(-\d{2})?$`)

// profDatesBefore lists the dates and months in v's JSON that start
// before floor ("data_from" itself excepted).
func profDatesBefore(t *testing.T, body []byte, floor string) []string {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var bad []string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, v := range x {
				if k != "data_from" {
					walk(path+"."+k, v)
				}
			}
		case []any:
			for i, v := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), v)
			}
		case string:
			if profDateLike.MatchString(x) && x < floor[:len(x)] {
				bad = append(bad, path+"="+x)
			}
		}
	}
	walk("", doc)
	return bad
}

func TestProfile_ScopesAndDataFrom(t *testing.T) {
	e := newProfEnv(t)
	year := time.Now().Add(60 * 24 * time.Hour)
	e.consent(t, profFirm, "BANK-TAXONLY", firmbridge.PurposeCreditAssessment, firmbridge.ConsentActive, []string{"tax"}, nil, year)
	from := pdate(2024, 1, 1)
	all := e.consent(t, profFirm, "BANK-ALL", firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"operations", "tax", "patent"}, &from, year)

	t.Run("only the sections the consent covers", func(t *testing.T) {
		n := e.audit.count()
		rec := e.do(t, "GET", "/v1/firms/"+profFirm+"/profile?purpose=credit_assessment", e.bank(t, "BANK-TAXONLY"), nil)
		p := decode[firmbridge.Profile](t, rec, 200)
		if !slices.Equal(p.Sections, []string{"identity", "tax"}) || p.Patents != nil || p.Operations != nil || p.Consistency != nil {
			t.Fatalf("sections %v, patents %v, operations %v", p.Sections, p.Patents, p.Operations)
		}
		want := []firmbridge.WithheldSection{
			{Section: "patents", Reason: "scope_not_granted", Scopes: []string{"patent"}},
			{Section: "operations", Reason: "scope_not_granted", Scopes: []string{"operations"}},
			{Section: "consistency", Reason: "scope_not_granted", Scopes: []string{"operations"}},
		}
		if fmt.Sprint(p.Withheld) != fmt.Sprint(want) {
			t.Errorf("withheld %+v, want %+v", p.Withheld, want)
		}
		for _, key := range []string{`"patents"`, `"operations"`, `"consistency"`} {
			if strings.Contains(rec.Body.String(), key+":") {
				t.Errorf("body has %s", key)
			}
		}
		if p.Identity.Name != profFirmName || p.Tax.Revenue.Last12 != "120000.00" || p.Tax.Revenue.Prior12 != "60000.00" ||
			p.Tax.Revenue.YoYUnavailable != firmbridge.GrowthIncomplete || p.Tax.Arrears.Outstanding != "2000.00" {
			t.Errorf("identity %+v, revenue %+v, arrears %+v", p.Identity, p.Tax.Revenue, p.Tax.Arrears)
		}
		evs := e.audit.since(n)
		if len(evs) != 1 || evs[0].Decision != "allow" || evs[0].USCC != profFirm || !slices.Equal(evs[0].Scopes, []string{"tax"}) {
			t.Errorf("events %+v", evs)
		}
	})

	t.Run("every section, nothing before data_from", func(t *testing.T) {
		rec := e.do(t, "GET", "/v1/firms/"+strings.ToLower(profFirm)+"/profile?purpose=loan_monitoring", e.bank(t, "BANK-ALL"), nil)
		p := decode[firmbridge.Profile](t, rec, 200)
		if !slices.Equal(p.Sections, []string{"identity", "tax", "patents", "operations", "consistency"}) || len(p.Withheld) != 0 {
			t.Fatalf("sections %v withheld %v", p.Sections, p.Withheld)
		}
		if p.ConsentID != all || p.DataFrom != "2024-01-01" {
			t.Errorf("consent %s data_from %s", p.ConsentID, p.DataFrom)
		}
		if bad := profDatesBefore(t, rec.Body.Bytes(), "2024-01-01"); len(bad) > 0 {
			t.Errorf("dates before data_from: %v", bad)
		}
		if p.Tax.Revenue.Last12 != "60000.00" || len(p.Tax.Returns) != 6 || p.Tax.Arrears.Outstanding != "2000.00" {
			t.Errorf("revenue %+v returns %d arrears %+v", p.Tax.Revenue, len(p.Tax.Returns), p.Tax.Arrears)
		}
		// The patent was filed in 2017: hidden. Its pledge of 2024-02-01 is not.
		if p.Patents.Counts.Total != 0 || len(p.Patents.ActivePledges) != 1 || p.Patents.Pledgees[0].Name != "某某银行股份有限公司" {
			t.Errorf("patents %+v", p.Patents)
		}
		if p.Operations.Electricity.Last12 != "3000.00" || p.Operations.AsOf == nil {
			t.Errorf("electricity %+v", p.Operations.Electricity)
		}
	})

	t.Run("unknown parameters are refused", func(t *testing.T) {
		rec := e.do(t, "GET", "/v1/firms/"+profFirm+"/profile?purpose=credit_assessment&months=36", e.bank(t, "BANK-TAXONLY"), nil)
		wantProblem(t, rec, 400, "invalid_parameter", "months")
		rec = e.do(t, "GET", "/v1/firms/"+profFirm+"/profile?purpose=credit_assessment&purpose=risk_review", e.bank(t, "BANK-TAXONLY"), nil)
		wantProblem(t, rec, 400, "invalid_parameter", "purpose")
	})
}

// walkPages follows next_cursor from path to the end.
func walkPages[T any](t *testing.T, e *profEnv, token, path string, id func(T) string) ([]string, int) {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	pages := 0
	for next := path; ; pages++ {
		if pages > 200 {
			t.Fatal("more than 200 pages")
		}
		page := decode[api.RecordsPage[T]](t, e.do(t, "GET", next, token, nil), 200)
		for _, it := range page.Items {
			k := id(it)
			if seen[k] {
				t.Fatalf("%s on two pages", k)
			}
			seen[k] = true
			ids = append(ids, k)
		}
		if page.NextCursor == nil {
			if len(page.Items) > page.Limit {
				t.Fatalf("%d items over limit %d", len(page.Items), page.Limit)
			}
			return ids, pages + 1
		}
		if len(page.Items) != page.Limit {
			t.Fatalf("a page of %d items before the last, limit %d", len(page.Items), page.Limit)
		}
		next = path + "&cursor=" + url.QueryEscape(*page.NextCursor)
	}
}

func TestRecords(t *testing.T) {
	e := newProfEnv(t)
	year := time.Now().Add(60 * 24 * time.Hour)
	e.consent(t, profFirm, "BANK-TAXONLY", firmbridge.PurposeCreditAssessment, firmbridge.ConsentActive, []string{"tax"}, nil, year)
	from := pdate(2024, 1, 1)
	e.consent(t, profFirm, "BANK-ALL", firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"operations", "tax", "patent"}, &from, year)
	taxOnly, allScopes := e.bank(t, "BANK-TAXONLY"), e.bank(t, "BANK-ALL")
	base := "/v1/firms/" + profFirm

	t.Run("pages cover every record once", func(t *testing.T) {
		taxID := func(r firmbridge.TaxRecord) string { return r.RecordID }
		ids, pages := walkPages(t, e, taxOnly, base+"/tax?purpose=credit_assessment&limit=4", taxID)
		if len(ids) != 20 || pages != 5 {
			t.Fatalf("%d records in %d pages, want 18 returns and 2 arrears in 5 pages", len(ids), pages)
		}
		one, _ := walkPages(t, e, taxOnly, base+"/tax?purpose=credit_assessment&limit=1", taxID)
		all, _ := walkPages(t, e, taxOnly, base+"/tax?purpose=credit_assessment", taxID)
		if !slices.Equal(one, ids) || !slices.Equal(all, ids) {
			t.Errorf("page sizes disagree:\n%v\n%v\n%v", one, ids, all)
		}
		vat, _ := walkPages(t, e, taxOnly, base+"/tax?purpose=credit_assessment&limit=5&source=tax.vat_return&from=2023-03&to=2023-05", taxID)
		if !slices.Equal(vat, []string{"VAT-202305", "VAT-202304", "VAT-202303"}) {
			t.Errorf("filtered %v", vat)
		}
	})

	t.Run("data_from applies to listings", func(t *testing.T) {
		rec := e.do(t, "GET", base+"/tax?purpose=loan_monitoring&limit=1000", allScopes, nil)
		page := decode[api.RecordsPage[firmbridge.TaxRecord]](t, rec, 200)
		if len(page.Items) != 7 || page.DataFrom != "2024-01-01" || page.NextCursor != nil {
			t.Errorf("%d items (want 6 returns, 1 arrears), data_from %q", len(page.Items), page.DataFrom)
		}
		if bad := profDatesBefore(t, rec.Body.Bytes(), "2024-01-01"); len(bad) > 0 {
			t.Errorf("dates before data_from: %v", bad)
		}
		ops, _ := walkPages(t, e, allScopes, base+"/operations?purpose=loan_monitoring&limit=4&source=ops.electricity",
			func(r firmbridge.OperationsRecord) string { return r.RecordID })
		if len(ops) != 6 {
			t.Errorf("%d electricity months since 2024-01", len(ops))
		}
		pats := decode[api.RecordsPage[firmbridge.PatentRecord]](t, e.do(t, "GET", base+"/patents?purpose=loan_monitoring", allScopes, nil), 200)
		if len(pats.Items) != 0 {
			t.Errorf("a patent filed before data_from is listed: %+v", pats.Items)
		}
	})

	t.Run("the scope must cover the listing", func(t *testing.T) {
		n := e.audit.count()
		wantProblem(t, e.do(t, "GET", base+"/patents?purpose=credit_assessment", taxOnly, nil), 403, "scope_not_granted", "")
		wantProblem(t, e.do(t, "GET", base+"/operations?purpose=credit_assessment", taxOnly, nil), 403, "scope_not_granted", "")
		wantProblem(t, e.do(t, "GET", base+"/tax?purpose=risk_review", taxOnly, nil), 403, "purpose_not_granted", "")
		wantProblem(t, e.do(t, "GET", base+"/tax?purpose=credit_assessment", e.bank(t, "BANK-NONE"), nil), 403, "consent_required", "")
		evs := e.audit.since(n)
		if len(evs) != 4 || evs[0].Decision != "deny" || evs[0].Reason != "scope_not_granted" || !slices.Equal(evs[0].Scopes, []string{"patent"}) {
			t.Errorf("events %+v", evs)
		}
	})

	t.Run("every parameter is checked", func(t *testing.T) {
		first := decode[api.RecordsPage[firmbridge.TaxRecord]](t, e.do(t, "GET", base+"/tax?purpose=credit_assessment&limit=2", taxOnly, nil), 200)
		cur := url.QueryEscape(*first.NextCursor)
		cases := []struct{ path, code, field string }{
			{"/v1/firms/91350100M000100Y44/tax?purpose=credit_assessment", "invalid_uscc", "uscc"},
			{base + "/tax", "purpose_required", "purpose"},
			{base + "/tax?purpose=marketing", "invalid_purpose", "purpose"},
			{base + "/tax?purpose=credit_assessment&limit=0", "invalid_parameter", "limit"},
			{base + "/tax?purpose=credit_assessment&limit=1001", "invalid_parameter", "limit"},
			{base + "/tax?purpose=credit_assessment&limit=ten", "invalid_parameter", "limit"},
			{base + "/tax?purpose=credit_assessment&limit=2&limit=3", "invalid_parameter", "limit"},
			{base + "/tax?purpose=credit_assessment&from=2024-13", "invalid_parameter", "from"},
			{base + "/tax?purpose=credit_assessment&to=yesterday", "invalid_parameter", "to"},
			{base + "/tax?purpose=credit_assessment&from=", "invalid_parameter", "from"},
			{base + "/tax?purpose=credit_assessment&from=2024-05&to=2024-04-30", "invalid_parameter", "to"},
			{base + "/tax?purpose=credit_assessment&source=ops.water", "invalid_parameter", "source"},
			{base + "/tax?purpose=credit_assessment&kind=invention", "invalid_parameter", "kind"},
			{base + "/patents?purpose=credit_assessment&status=alive", "invalid_parameter", "status"},
			{base + "/tax?purpose=credit_assessment&cursor=", "invalid_cursor", "cursor"},
			{base + "/tax?purpose=credit_assessment&cursor=not-a-cursor", "invalid_cursor", "cursor"},
			{base + "/tax?purpose=credit_assessment&cursor=" + strings.Repeat("A", 2000), "invalid_cursor", "cursor"},
			// A cursor only works with the filters that made it, on its own listing.
			{base + "/tax?purpose=credit_assessment&source=tax.arrears&cursor=" + cur, "invalid_cursor", "cursor"},
			{base + "/operations?purpose=credit_assessment&cursor=" + cur, "invalid_cursor", "cursor"},
		}
		for _, c := range cases {
			wantProblem(t, e.do(t, "GET", c.path, taxOnly, nil), 400, c.code, c.field)
		}
		// The same cursor with its own filters works, in any page size.
		page := decode[api.RecordsPage[firmbridge.TaxRecord]](t, e.do(t, "GET", base+"/tax?purpose=credit_assessment&limit=3&cursor="+cur, taxOnly, nil), 200)
		if len(page.Items) != 3 || page.Items[0].RecordID == first.Items[1].RecordID {
			t.Errorf("second page %+v after %+v", page.Items, first.Items)
		}
	})

	t.Run("banks only", func(t *testing.T) {
		tok, _ := e.tokens.Issue("owner", firmbridge.RoleEnterprise, profFirm, time.Hour)
		wantProblem(t, e.do(t, "GET", base+"/tax?purpose=credit_assessment", tok, nil), 403, "role_not_allowed", "")
	})
}

func TestProfileBatch(t *testing.T) {
	e := newProfEnv(t)
	year := time.Now().Add(60 * 24 * time.Hour)
	firms := synth.Firms(99, 6)
	fB, fC, fD, fE, fF := firms[0].USCC, firms[1].USCC, firms[2].USCC, firms[3].USCC, firms[4].USCC
	const bank = "BANK-PORTFOLIO"
	consentA := e.consent(t, profFirm, bank, firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"tax", "patent"}, nil, year)
	e.consent(t, fB, bank, firmbridge.PurposeLoanMonitoring, firmbridge.ConsentRevoked, []string{"tax"}, nil, year)
	e.consent(t, fC, bank, firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"tax"}, nil, time.Now().Add(-time.Hour))
	e.consent(t, fD, bank, firmbridge.PurposeCreditAssessment, firmbridge.ConsentActive, []string{"tax"}, nil, year)
	e.consent(t, fF, bank, firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"patent"}, nil, year)
	e.consent(t, fE, "ANOTHER-BANK", firmbridge.PurposeLoanMonitoring, firmbridge.ConsentActive, []string{"tax"}, nil, year)
	tok := e.bank(t, bank)
	post := func(body any) *httptest.ResponseRecorder {
		b, _ := json.Marshal(body)
		return e.do(t, "POST", "/v1/profiles/batch", tok, b)
	}

	t.Run("a decision per firm, one read, one event each", func(t *testing.T) {
		n := e.audit.count()
		reads, consentReads := e.reader.reads.Load(), e.consents.reads.Load()
		inputs := []string{profFirm, fB, fC, fD, fE, "not-a-uscc", fF, strings.ToLower(profFirm), "not-a-uscc"}
		resp := decode[api.BatchResponse](t, post(api.BatchRequest{Purpose: "loan_monitoring", USCCs: inputs}), 200)
		got := map[string]string{}
		var order []string
		for _, r := range resp.Results {
			k := r.USCC
			if k == "" {
				k = r.Input
			}
			got[k] = r.Decision + " " + r.Code
			order = append(order, k)
		}
		want := map[string]string{profFirm: "allow ", fB: "deny consent_revoked", fC: "deny consent_expired", fD: "deny purpose_not_granted",
			fE: "deny consent_required", "not-a-uscc": "deny invalid_uscc", fF: "allow "}
		if fmt.Sprint(got) != fmt.Sprint(want) || len(resp.Results) != 7 {
			t.Fatalf("decisions %v, want %v", got, want)
		}
		if !slices.Equal(order, []string{profFirm, fB, fC, fD, fE, "not-a-uscc", fF}) || resp.Allowed != 2 || resp.Denied != 5 {
			t.Errorf("order %v allowed %d denied %d", order, resp.Allowed, resp.Denied)
		}
		a := resp.Results[0].Profile
		if a == nil || a.ConsentID != consentA || !slices.Equal(a.Sections, []string{"identity", "tax", "patents"}) ||
			a.Tax.Revenue.Last12 != "120000.00" || a.Patents.Counts.Total != 1 || len(a.Patents.ActivePledges) != 1 {
			t.Errorf("profile of A: %+v", a)
		}
		if f := resp.Results[6].Profile; f == nil || !slices.Equal(f.Sections, []string{"identity", "patents"}) || f.Identity.Name != "" {
			t.Errorf("profile of F: %+v", f)
		}
		for _, r := range resp.Results[1:6] {
			if r.Profile != nil || r.Detail == "" {
				t.Errorf("denied %s carries %+v", r.Input, r)
			}
		}
		if d := e.reader.reads.Load() - reads; d != 1 {
			t.Errorf("%d profile reads, want 1 for the whole batch", d)
		}
		if d := e.consents.reads.Load() - consentReads; d != 1 {
			t.Errorf("%d consent reads, want 1", d)
		}
		evs := e.audit.since(n)
		if len(evs) != 7 {
			t.Fatalf("%d access events, want 7", len(evs))
		}
		// Events are written concurrently: match them to results by firm.
		byFirm := map[string]*firmbridge.AccessEvent{}
		ids := map[string]bool{}
		for _, ev := range evs {
			if byFirm[ev.USCC] != nil || ids[ev.EventID] {
				t.Errorf("two events for %s or id %s twice", ev.USCC, ev.EventID)
			}
			byFirm[ev.USCC], ids[ev.EventID] = ev, true
		}
		for _, r := range resp.Results {
			k := r.USCC
			if k == "" {
				k = r.Input
			}
			ev := byFirm[k]
			if ev == nil || ev.Decision != r.Decision || ev.Reason != r.Code || ev.RequestID != evs[0].RequestID ||
				ev.Purpose != "loan_monitoring" || ev.Path != "/v1/profiles/batch" {
				t.Errorf("event %+v for result %+v", ev, r)
			}
		}
		if a := byFirm[profFirm]; a.ConsentID != consentA || !slices.Equal(a.Scopes, []string{"tax", "patent"}) || a.Status != 200 {
			t.Errorf("event of A %+v", a)
		}
		if byFirm[fB].Status != 403 || byFirm["not-a-uscc"].Status != 400 {
			t.Errorf("statuses %d %d", byFirm[fB].Status, byFirm["not-a-uscc"].Status)
		}
	})

	t.Run("scopes narrow the batch", func(t *testing.T) {
		resp := decode[api.BatchResponse](t, post(api.BatchRequest{Purpose: "loan_monitoring", USCCs: []string{profFirm, fF}, Scopes: []string{"tax"}}), 200)
		a, f := resp.Results[0], resp.Results[1]
		if a.Decision != "allow" || !slices.Equal(a.Profile.Sections, []string{"identity", "tax"}) || a.Profile.Patents != nil ||
			len(a.Profile.Withheld) != 3 || fmt.Sprint(a.Profile.Withheld[0]) != fmt.Sprint(firmbridge.WithheldSection{Section: "patents", Reason: "not_requested", Scopes: []string{"patent"}}) {
			t.Errorf("A: %+v", a.Profile)
		}
		if f.Decision != "deny" || f.Code != "scope_not_granted" {
			t.Errorf("F: %+v", f)
		}
	})

	t.Run("the request is checked", func(t *testing.T) {
		many := make([]string, 501)
		for i := range many {
			many[i] = profFirm
		}
		n := e.audit.count()
		wantProblem(t, post(api.BatchRequest{Purpose: "loan_monitoring", USCCs: many}), 400, "invalid_parameter", "usccs")
		wantProblem(t, post(api.BatchRequest{Purpose: "loan_monitoring"}), 400, "invalid_parameter", "usccs")
		wantProblem(t, post(api.BatchRequest{USCCs: []string{profFirm}}), 400, "purpose_required", "purpose")
		wantProblem(t, post(api.BatchRequest{Purpose: "x", USCCs: []string{profFirm}}), 400, "invalid_purpose", "purpose")
		wantProblem(t, post(api.BatchRequest{Purpose: "loan_monitoring", USCCs: []string{profFirm}, Scopes: []string{"taxes"}}), 400, "invalid_parameter", "scopes")
		wantProblem(t, post(map[string]any{"purpose": "loan_monitoring", "usccs": []string{profFirm}, "limit": 3}), 400, "invalid_body", "")
		wantProblem(t, e.do(t, "POST", "/v1/profiles/batch", tok, []byte(`{"purpose":`)), 400, "invalid_body", "")
		if d := e.audit.count() - n; d != 7 {
			t.Errorf("%d events for 7 refused requests", d)
		}
	})

	t.Run("no event, no data", func(t *testing.T) {
		e.audit.fail.Store(true)
		defer e.audit.fail.Store(false)
		rec := post(api.BatchRequest{Purpose: "loan_monitoring", USCCs: []string{profFirm}})
		wantProblem(t, rec, 503, "audit_unavailable", "")
		if strings.Contains(rec.Body.String(), "vat_returns") {
			t.Error("data left without its event")
		}
	})
}
