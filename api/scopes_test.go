package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

// clientToken registers a client with scopes and trades its credentials
// at POST /v1/auth/token, as an institution's system would.
func (e *mxEnv) clientToken(role, org string, scopes ...string) string {
	e.t.Helper()
	created := MustCreateClient(e.t, e.clients, api.CreateClientRequest{Name: "system of " + org, Role: role, Org: org, Scopes: scopes})
	rec := tokenRequest(e.t, e.handler, url.Values{"grant_type": {"client_credentials"}}, []string{created.ID, created.ClientSecret})
	var resp api.TokenResponse
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		e.t.Fatalf("token for client %s: %d %s", created.ID, rec.Code, rec.Body)
	}
	if resp.Scope != strings.Join(scopes, " ") {
		e.t.Fatalf("token scope %q, want %q", resp.Scope, strings.Join(scopes, " "))
	}
	return resp.AccessToken
}

// A client's token scopes narrow what consent allows, on every data route:
// the profile withholds the sections outside them, the listings and the
// batch refuse them, and the access events say what was read or why not.
func TestTokenScopes_NarrowConsent(t *testing.T) {
	e := newMxEnv(t, nil)
	const bank = "BANK-SCOPE"
	e.grant(mxFirm, bank, firmbridge.Scopes, firmbridge.PurposeCreditAssessment, nil)
	taxOnly := e.clientToken(firmbridge.RoleBank, bank, firmbridge.ScopeTax)
	unscoped := e.clientToken(firmbridge.RoleBank, bank)
	profile := "/v1/firms/" + mxFirm + "/profile?purpose=credit_assessment"

	// The profile: tax served, the rest withheld for the token.
	r := e.do(http.MethodGet, profile, taxOnly, nil)
	r.wantOK(t, http.StatusOK)
	var p firmbridge.Profile
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if want := []string{firmbridge.SectionIdentity, firmbridge.SectionTax}; !reflect.DeepEqual(p.Sections, want) {
		t.Errorf("sections %v, want %v", p.Sections, want)
	}
	present, _ := mxSections(t, r.body)
	if want := []string{firmbridge.SectionIdentity, firmbridge.SectionTax}; !reflect.DeepEqual(present, want) {
		t.Errorf("sections with data %v, want %v", present, want)
	}
	wantWithheld := []firmbridge.WithheldSection{
		{Section: firmbridge.SectionPatents, Reason: firmbridge.WithheldScopeNotInToken, Scopes: []string{firmbridge.ScopePatent}},
		{Section: firmbridge.SectionOperations, Reason: firmbridge.WithheldScopeNotInToken, Scopes: []string{firmbridge.ScopeOperations}},
		{Section: firmbridge.SectionConsistency, Reason: firmbridge.WithheldScopeNotInToken, Scopes: []string{firmbridge.ScopeOperations}},
	}
	if !reflect.DeepEqual(p.Withheld, wantWithheld) {
		t.Errorf("withheld %+v, want %+v", p.Withheld, wantWithheld)
	}
	if ev := r.events[0]; !reflect.DeepEqual(ev.Scopes, []string{firmbridge.ScopeTax}) {
		t.Errorf("access event scopes %v, want the scopes read, [tax]", ev.Scopes)
	}

	// A client registered without scopes is bounded by consent alone.
	r = e.do(http.MethodGet, profile, unscoped, nil)
	r.wantOK(t, http.StatusOK)
	if _, sections := mxSections(t, r.body); !reflect.DeepEqual(sections, mxSectionsFor(firmbridge.Scopes)) {
		t.Errorf("unscoped client: sections %v, want %v", sections, mxSectionsFor(firmbridge.Scopes))
	}

	// The listings: tax yes, patents and operations refused.
	e.do(http.MethodGet, "/v1/firms/"+mxFirm+"/tax?purpose=credit_assessment", taxOnly, nil).wantOK(t, http.StatusOK)
	for _, listing := range []string{"patents", "operations"} {
		r := e.do(http.MethodGet, "/v1/firms/"+mxFirm+"/"+listing+"?purpose=credit_assessment", taxOnly, nil)
		r.wantProblem(t, http.StatusForbidden, "insufficient_scope")
		if h := r.header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) {
			t.Errorf("%s: WWW-Authenticate %q, want an insufficient_scope challenge", listing, h)
		}
	}

	// The batch: asking for a scope outside the token is refused whole;
	// asking for none serves what the token holds.
	batch := func(scopes []string) mxResp {
		return e.do(http.MethodPost, "/v1/profiles/batch", taxOnly,
			api.BatchRequest{Purpose: firmbridge.PurposeCreditAssessment, USCCs: []string{mxFirm}, Scopes: scopes})
	}
	batch([]string{firmbridge.ScopeTax, firmbridge.ScopePatent}).wantProblem(t, http.StatusForbidden, "insufficient_scope")
	r = batch(nil)
	var resp api.BatchResponse
	if err := json.Unmarshal(r.body, &resp); err != nil || r.code != http.StatusOK || resp.Allowed != 1 {
		t.Fatalf("batch: %s", r)
	}
	if got := resp.Results[0].Profile; !reflect.DeepEqual(got.Sections, p.Sections) || !reflect.DeepEqual(got.Withheld, wantWithheld) {
		t.Errorf("batch profile: sections %v withheld %+v, want those of the single read", got.Sections, got.Withheld)
	}
	if len(r.events) != 1 || !reflect.DeepEqual(r.events[0].Scopes, []string{firmbridge.ScopeTax}) {
		t.Errorf("batch access events %+v, want one reading [tax]", r.events)
	}

	// A consent covering only what the token lacks: refused, not an empty
	// profile.
	const otherBank = "BANK-SCOPE-2"
	e.grant(mxFirm, otherBank, []string{firmbridge.ScopePatent}, firmbridge.PurposeRiskReview, nil)
	patentsOnly := e.clientToken(firmbridge.RoleBank, otherBank, firmbridge.ScopeTax)
	e.do(http.MethodGet, "/v1/firms/"+mxFirm+"/profile?purpose=risk_review", patentsOnly, nil).wantProblem(t, http.StatusForbidden, "insufficient_scope")

	// A consent request for a scope the client may not read is refused.
	r = e.do(http.MethodPost, "/v1/consent-requests", taxOnly, map[string]any{"uscc": mxFirm, "scopes": []string{"tax", "patent"},
		"purpose": "loan_monitoring", "expires_at": e.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)})
	r.wantProblem(t, http.StatusForbidden, "insufficient_scope")
}

// A provider client registered for tax pushes tax sources only.
func TestTokenScopes_ProviderPush(t *testing.T) {
	e := newMxEnv(t, nil)
	tax := e.clientToken(firmbridge.RoleProvider, "PROV-SCOPE", firmbridge.ScopeTax)
	r := e.do(http.MethodPost, "/v1/ingest/ops.water", tax, mxBody{ctype: "application/x-ndjson", data: `{"record_id":"w1"}` + "\n"})
	if r.code != http.StatusForbidden || r.problemCode() != "insufficient_scope" {
		t.Errorf("push to ops.water with a tax token: %s, want 403 insufficient_scope", r)
	}
	r = e.do(http.MethodPost, "/v1/ingest/tax.credit_rating", tax, mxBody{ctype: "application/x-ndjson", data: mxIngestLine + "\n"})
	var resp api.IngestResponse
	if r.code != http.StatusOK || json.Unmarshal(r.body, &resp) != nil || resp.Accepted != 1 {
		t.Errorf("push to tax.credit_rating with a tax token: %s, want 1 accepted", r)
	}
}

// Registration takes only the data scopes, and only for the roles they
// limit.
func TestClients_ScopeVocabulary(t *testing.T) {
	clients, err := api.NewClients(&memClients{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role   string
		scopes []string
		ok     bool
	}{
		{firmbridge.RoleBank, []string{"tax", "patent", "operations"}, true},
		{firmbridge.RoleBank, []string{"tax", "tax"}, true},
		{firmbridge.RoleProvider, []string{"patent"}, true},
		{firmbridge.RoleRegulator, nil, true},
		{firmbridge.RoleBank, []string{"profiles:read"}, false},
		{firmbridge.RoleBank, []string{"TAX"}, false},
		{firmbridge.RoleRegulator, []string{"tax"}, false},
		{firmbridge.RoleEnterprise, []string{"tax"}, false},
	} {
		org := "ORG-1"
		if tc.role == firmbridge.RoleEnterprise {
			org = mxFirm
		}
		c, err := clients.Create(t.Context(), "tester", api.CreateClientRequest{Name: "n", Role: tc.role, Org: org, Scopes: tc.scopes})
		if (err == nil) != tc.ok {
			t.Errorf("%s %v: error %v, want ok %v", tc.role, tc.scopes, err, tc.ok)
			continue
		}
		if err != nil {
			if firmbridge.ErrorCode(err) != "invalid_client_registration" || !strings.Contains(firmbridge.ErrorMessage(err), "scope") {
				t.Errorf("%s %v: %v, want invalid_client_registration about scopes", tc.role, tc.scopes, err)
			}
			continue
		}
		for _, sc := range c.Scopes {
			if !slices.Contains(firmbridge.Scopes, sc) {
				t.Errorf("%s %v: registered scope %q", tc.role, tc.scopes, sc)
			}
		}
	}
}
