package api_test

// The authorization rules of the whole API, in one place, checked against
// the real ClickHouse and Kafka:
//
//   - TestMatrix_RoleRoute: every route of the router × every role. A route
//     the router serves without a line in mxMatrix fails the test.
//   - TestMatrix_ConsentStates: every consent state × every bank route that
//     reads firm data.
//   - TestMatrix_Ownership: an enterprise acts only for its own USCC, a bank
//     only for its own institution.
//   - TestMatrix_TokenAttacks: forged and broken tokens on every
//     authenticated route (tokens_test.go tries every attack on one route,
//     TestTokens_AttacksGet401Problem, and the verifier alone,
//     TestTokens_Rejects; this spreads a set of them over the whole router).
//   - TestMatrix_RateLimit: per-institution limits across institutions and
//     tokens (ratelimit_test.go checks 429, Retry-After and the access event
//     of one bank on an in-memory server; this adds that another bank is
//     unaffected, that a second token of the same bank shares the bucket,
//     and that every kind of route is limited with one event each).
//
// Access events: every request to a route that touches firm data, consents,
// consent requests or clients writes exactly one access event with its
// decision and reason code (the batch writes one per firm decision; the
// matrix sends it one firm). Public routes write none. A push of records
// (POST /v1/ingest/{source}) reads no firm data and writes none, but its
// refusal by the role matrix is an access event like every refusal there.
// A request whose token is refused (401) writes none: the caller is not
// identified, and anonymous requests must not be able to fill the audit log
// (they are counted in the request log and metrics instead).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

const (
	rBank  = firmbridge.RoleBank
	rEnt   = firmbridge.RoleEnterprise
	rReg   = firmbridge.RoleRegulator
	rProv  = firmbridge.RoleProvider
	rAdmin = firmbridge.RoleAdmin
)

// mxAuditRule says which requests of a route write an access event.
type mxAuditRule int

const (
	auditNone     mxAuditRule = iota // public: none
	auditEvery                       // exactly one per request, allowed or denied
	auditRefusals                    // only refusals by the role matrix (one each)
)

// mxRule is one route's line of the authorization matrix.
type mxRule struct {
	route  string   // "METHOD /path/:param" as the router names it
	roles  []string // the roles it serves; every other role gets 403 role_not_allowed
	public bool     // no bearer token needed
	audit  mxAuditRule
	// optional routes are being added by others and may not be there yet.
	optional bool
	// want is the status an allowed role gets with the matrix fixture
	// (0: any 2xx or 3xx).
	want int
}

// mxMatrix is the authorization matrix: who may call what.
var mxMatrix = []mxRule{
	{route: "GET /healthz", public: true, want: 200},
	{route: "GET /readyz", public: true, want: 200},
	{route: "GET /metrics", public: true, want: 200},
	{route: "GET /.well-known/jwks.json", public: true, want: 200},
	{route: "GET /openapi.json", public: true, optional: true},
	{route: "GET /docs", public: true, optional: true},
	{route: "POST /v1/auth/token", public: true, want: 200}, // client credentials, not a bearer token

	{route: "POST /v1/admin/clients", roles: []string{rAdmin}, audit: auditEvery, want: 201},
	{route: "GET /v1/admin/clients", roles: []string{rAdmin}, audit: auditEvery, want: 200},
	{route: "POST /v1/admin/clients/:id/disable", roles: []string{rAdmin}, audit: auditEvery, want: 200},

	{route: "GET /v1/firms/:uscc/profile", roles: []string{rBank}, audit: auditEvery, want: 200},
	{route: "GET /v1/firms/:uscc/tax", roles: []string{rBank}, audit: auditEvery, want: 200},
	{route: "GET /v1/firms/:uscc/patents", roles: []string{rBank}, audit: auditEvery, want: 200},
	{route: "GET /v1/firms/:uscc/operations", roles: []string{rBank}, audit: auditEvery, want: 200},
	{route: "POST /v1/profiles/batch", roles: []string{rBank}, audit: auditEvery, want: 200},

	{route: "POST /v1/consents", roles: []string{rEnt}, audit: auditEvery, want: 201},
	{route: "GET /v1/consents", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},
	{route: "GET /v1/consents/:id", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},
	{route: "POST /v1/consents/:id/revoke", roles: []string{rBank, rEnt}, audit: auditEvery, want: 200},
	{route: "GET /v1/consents/:id/receipts", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},

	{route: "POST /v1/consent-requests", roles: []string{rBank}, audit: auditEvery, want: 201},
	{route: "GET /v1/consent-requests", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},
	{route: "GET /v1/consent-requests/:id", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},
	{route: "POST /v1/consent-requests/:id/approve", roles: []string{rEnt}, audit: auditEvery, want: 200},
	{route: "POST /v1/consent-requests/:id/reject", roles: []string{rEnt}, audit: auditEvery, want: 200},

	{route: "POST /v1/ingest/:source", roles: []string{rProv}, audit: auditRefusals, want: 200},

	{route: "GET /v1/audit/events", roles: []string{rReg}, audit: auditEvery, want: 200},
	{route: "GET /v1/audit/stats", roles: []string{rReg}, audit: auditEvery, want: 200},
	{route: "GET /v1/audit/alerts", roles: []string{rReg}, audit: auditEvery, want: 200},
	{route: "GET /v1/audit/export", roles: []string{rReg}, audit: auditEvery, want: 200},
	{route: "GET /v1/audit/verify", roles: []string{rReg}, audit: auditEvery, want: 200},
	{route: "GET /v1/access-log", roles: []string{rEnt, rBank}, audit: auditEvery, want: 200},
}

// mxOrgs is the org of each role's token in the matrix.
var mxOrgs = map[string]string{rBank: "BANK-MX", rEnt: mxFirm, rReg: "REG-MX", rProv: "PROV-MX", rAdmin: "ADMIN-MX"}

var mxAllScopes = []string{firmbridge.ScopeTax, firmbridge.ScopePatent, firmbridge.ScopeOperations}

// mxFixture holds what the matrix's requests refer to.
type mxFixture struct {
	readConsent   string // mxFirm → BANK-MX, every scope, credit_assessment
	revokeConsent string // mxFirm → BANK-MX, tax, risk_review
	approveReq    string // BANK-MX asks mxFirm, pending
	rejectReq     string // BANK-MX asks mxFirm, pending
	disableClient string
	tokenClient   *api.CreatedClient
}

const mxIngestLine = `{"record_id":"mx-cr-1","source":"tax.credit_rating","schema_version":1,"uscc":"` + mxFirm +
	`","observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"` + mxFirm + `","year":"2023","rating":"A"}}`

// mxRequest is the request the matrix sends to route (the same for every
// role: refused roles never reach the handler).
func mxRequest(route string, fx *mxFixture) (method, path string, body any) {
	method, pattern, _ := strings.Cut(route, " ")
	id := "00000000-0000-4000-8000-000000000000"
	switch route {
	case "POST /v1/admin/clients":
		body = api.CreateClientRequest{Name: "matrix", Role: rBank, Org: "BANK-MX-NEW"}
	case "POST /v1/admin/clients/:id/disable":
		id = fx.disableClient
	case "POST /v1/auth/token":
		body = mxBody{"application/x-www-form-urlencoded", url.Values{"grant_type": {"client_credentials"},
			"client_id": {fx.tokenClient.ID}, "client_secret": {fx.tokenClient.ClientSecret}}.Encode()}
	case "GET /v1/firms/:uscc/profile", "GET /v1/firms/:uscc/tax", "GET /v1/firms/:uscc/patents", "GET /v1/firms/:uscc/operations":
		pattern += "?purpose=credit_assessment"
	case "POST /v1/profiles/batch":
		body = api.BatchRequest{Purpose: firmbridge.PurposeCreditAssessment, USCCs: []string{mxFirm}}
	case "POST /v1/consents":
		body = map[string]any{"grantee": "BANK-MX-NEW", "scopes": []string{"tax"}, "purpose": "risk_review"}
	case "GET /v1/consents/:id", "GET /v1/consents/:id/receipts":
		id = fx.readConsent
	case "POST /v1/consents/:id/revoke":
		id = fx.revokeConsent
	case "POST /v1/consent-requests":
		body = map[string]any{"uscc": mxFirm, "scopes": []string{"tax"}, "purpose": "credit_assessment",
			"expires_at": time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)}
	case "GET /v1/consent-requests/:id", "POST /v1/consent-requests/:id/approve":
		id = fx.approveReq
	case "POST /v1/consent-requests/:id/reject":
		id = fx.rejectReq
	case "GET /v1/audit/export":
		pattern += "?from=" + time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02")
	case "POST /v1/ingest/:source":
		body = mxBody{"application/x-ndjson", mxIngestLine}
	}
	path = strings.NewReplacer(":uscc", mxFirm, ":id", id, ":source", "tax.credit_rating").Replace(pattern)
	return method, path, body
}

// mxCheckRoutes fails for every route without a matrix line and every
// (non-optional) line without a route.
func mxCheckRoutes(t *testing.T, routes []string) map[string]mxRule {
	t.Helper()
	rules := map[string]mxRule{}
	for _, r := range mxMatrix {
		rules[r.route] = r
	}
	for _, route := range routes {
		if _, ok := rules[route]; !ok {
			t.Errorf("route %s has no line in the authorization matrix (mxMatrix in api/matrix_test.go): add one saying which roles it serves", route)
		}
	}
	for _, r := range mxMatrix {
		if !r.optional && !slices.Contains(routes, r.route) {
			t.Errorf("the matrix names %s, which the router does not serve", r.route)
		}
	}
	return rules
}

func TestMatrix_RoleRoute(t *testing.T) {
	e := newMxEnv(t, nil)
	routes := e.routes()
	rules := mxCheckRoutes(t, routes)

	bank, firm := mxOrgs[rBank], mxOrgs[rEnt]
	fx := &mxFixture{
		readConsent:   e.grant(firm, bank, mxAllScopes, firmbridge.PurposeCreditAssessment, nil),
		revokeConsent: e.grant(firm, bank, []string{"tax"}, firmbridge.PurposeRiskReview, nil),
		approveReq:    e.request(bank, firm, []string{"patent"}, firmbridge.PurposeLoanMonitoring),
		rejectReq:     e.request(bank, firm, []string{"operations"}, firmbridge.PurposeRiskReview),
	}
	fx.tokenClient = MustCreateClient(t, e.clients, api.CreateClientRequest{Name: "mx-token", Role: rBank, Org: bank})
	fx.disableClient = MustCreateClient(t, e.clients, api.CreateClientRequest{Name: "mx-disable", Role: rBank, Org: bank}).ID

	var grid []string
	for _, route := range routes {
		rule, ok := rules[route]
		if !ok {
			continue
		}
		method, path, body := mxRequest(route, fx)
		if rule.public {
			r := e.do(method, path, "", body)
			if (rule.want != 0 && r.code != rule.want) || (rule.want == 0 && r.code >= 400) {
				t.Errorf("public %s without a token: %s, want %d", route, r, rule.want)
			}
			if len(r.events) != 0 {
				t.Errorf("public %s wrote %d access events, want none", route, len(r.events))
			}
			grid = append(grid, fmt.Sprintf("%-42s public → %d", route, r.code))
			continue
		}
		line := fmt.Sprintf("%-42s", route)
		for _, role := range firmbridge.Roles {
			org := mxOrgs[role]
			if route == "POST /v1/consents/:id/revoke" {
				// Both parties may revoke: each role revokes a consent of its own.
				fx.revokeConsent = e.grant(firm, bank, []string{"tax"}, firmbridge.PurposeRiskReview, nil)
				method, path, body = mxRequest(route, fx)
			}
			r := e.do(method, path, e.token(role, org), body)
			line += fmt.Sprintf(" %s=%d", role, r.code)
			allowed := slices.Contains(rule.roles, role)
			if !allowed {
				if r.code != http.StatusForbidden || r.problemCode() != "role_not_allowed" {
					t.Errorf("%s as %s: got %d %q, want 403 role_not_allowed; %s", route, role, r.code, r.problemCode(), r)
				}
				if ev := r.wantOneEvent(t, firmbridge.DecisionDeny, "role_not_allowed", http.StatusForbidden); ev != nil &&
					(ev.Role != role || ev.Org != org || ev.Subject != "user@"+org || ev.Method != method || ev.Path != strings.Split(path, "?")[0]) {
					t.Errorf("%s as %s: the refusal's access event %+v does not name the caller and the request", route, role, ev)
				}
				continue
			}
			if r.code == http.StatusForbidden && r.problemCode() == "role_not_allowed" {
				t.Errorf("%s as %s: refused by the role matrix, want it served", route, role)
				continue
			}
			if r.code != rule.want {
				t.Errorf("%s as %s: %s, want %d", route, role, r, rule.want)
			}
			switch rule.audit {
			case auditEvery:
				decision, reason := firmbridge.DecisionAllow, ""
				if r.code >= 400 {
					decision, reason = firmbridge.DecisionDeny, r.problemCode()
				}
				if ev := r.wantOneEvent(t, decision, reason, r.code); ev != nil && (ev.Role != role || ev.Org != org) {
					t.Errorf("%s as %s: access event names %s/%s", route, role, ev.Role, ev.Org)
				}
			case auditRefusals:
				if len(r.events) != 0 {
					t.Errorf("%s as %s wrote %d access events, want none", route, role, len(r.events))
				}
			}
		}
		grid = append(grid, line)
	}
	t.Logf("role × route:\n%s", strings.Join(grid, "\n"))
}

// The bank routes that read firm data, as the consent-state matrix sends
// them (purpose credit_assessment, firm mxFirm).
var mxDataRoutes = []struct {
	name, method, path string
	scope              string   // the scope a listing needs
	batchScopes        []string // the batch's scopes field
}{
	{name: "profile", method: http.MethodGet, path: "/v1/firms/" + mxFirm + "/profile?purpose=credit_assessment"},
	{name: "tax", method: http.MethodGet, path: "/v1/firms/" + mxFirm + "/tax?purpose=credit_assessment", scope: firmbridge.ScopeTax},
	{name: "patents", method: http.MethodGet, path: "/v1/firms/" + mxFirm + "/patents?purpose=credit_assessment", scope: firmbridge.ScopePatent},
	{name: "operations", method: http.MethodGet, path: "/v1/firms/" + mxFirm + "/operations?purpose=credit_assessment", scope: firmbridge.ScopeOperations},
	{name: "batch", method: http.MethodPost, path: "/v1/profiles/batch"},
	{name: "batch[tax]", method: http.MethodPost, path: "/v1/profiles/batch", batchScopes: []string{firmbridge.ScopeTax}},
}

const (
	stOK       = "200"
	stRequired = "consent_required"
	stRevoked  = "consent_revoked"
	stExpired  = "consent_expired"
	stScope    = "scope_not_granted"
	stPurpose  = "purpose_not_granted"
)

func TestMatrix_ConsentStates(t *testing.T) {
	e := newMxEnv(t, nil)
	const purpose = firmbridge.PurposeCreditAssessment
	firm := mxFirm
	day := 24 * time.Hour
	states := []struct {
		name string
		// build makes the state through the API for bank and returns the
		// consent a read is allowed under, and its scopes.
		build func(bank string) (string, []string)
		// want per route of mxDataRoutes: stOK, or the denial's code (403
		// problem; for the batch, the firm's decision).
		want [6]string
	}{
		{"none", func(string) (string, []string) { return "", nil },
			[6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"pending (requested, not approved)", func(bank string) (string, []string) {
			e.request(bank, firm, mxAllScopes, purpose)
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"active, every scope", func(bank string) (string, []string) {
			return e.grant(firm, bank, mxAllScopes, purpose, nil), mxAllScopes
		}, [6]string{stOK, stOK, stOK, stOK, stOK, stOK}},
		{"active by approved request", func(bank string) (string, []string) {
			id := e.request(bank, firm, []string{"tax", "operations"}, purpose)
			e.act(firm, "/v1/consent-requests/"+id+"/approve")
			return id, []string{"tax", "operations"}
		}, [6]string{stOK, stOK, stScope, stOK, stOK, stOK}},
		{"active, wrong scope (patent only)", func(bank string) (string, []string) {
			return e.grant(firm, bank, []string{"patent"}, purpose, nil), []string{"patent"}
		}, [6]string{stOK, stScope, stOK, stScope, stOK, stScope}},
		{"active, wrong purpose (risk_review)", func(bank string) (string, []string) {
			e.grant(firm, bank, mxAllScopes, firmbridge.PurposeRiskReview, nil)
			return "", nil
		}, [6]string{stPurpose, stPurpose, stPurpose, stPurpose, stPurpose, stPurpose}},
		{"expired", func(bank string) (string, []string) {
			e.grant(firm, bank, mxAllScopes, purpose, map[string]any{"expires_at": e.clock.Now().Add(time.Hour).Format(time.RFC3339)})
			return "", nil
		}, [6]string{stExpired, stExpired, stExpired, stExpired, stExpired, stExpired}},
		// A request the firm never answered granted nothing: when it lapses
		// there is no consent that expired, the bank still needs one.
		{"request lapsed unanswered", func(bank string) (string, []string) {
			e.requestFor(bank, firm, mxAllScopes, purpose, time.Hour)
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"revoked", func(bank string) (string, []string) {
			id := e.grant(firm, bank, mxAllScopes, purpose, nil)
			e.act(firm, "/v1/consents/"+id+"/revoke")
			return "", nil
		}, [6]string{stRevoked, stRevoked, stRevoked, stRevoked, stRevoked, stRevoked}},
		{"rejected request", func(bank string) (string, []string) {
			id := e.request(bank, firm, mxAllScopes, purpose)
			e.act(firm, "/v1/consent-requests/"+id+"/reject")
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"not yet valid (starts tomorrow)", func(bank string) (string, []string) {
			e.grant(firm, bank, mxAllScopes, purpose, map[string]any{"valid_from": e.clock.Now().Add(day).Format(time.RFC3339)})
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"active for another firm", func(bank string) (string, []string) {
			e.grant(mxOtherFirm, bank, mxAllScopes, purpose, nil)
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"active for another bank", func(bank string) (string, []string) {
			e.grant(firm, bank+"-ELSE", mxAllScopes, purpose, nil)
			return "", nil
		}, [6]string{stRequired, stRequired, stRequired, stRequired, stRequired, stRequired}},
		{"revoked, then granted again", func(bank string) (string, []string) {
			old := e.grant(firm, bank, mxAllScopes, purpose, nil)
			e.act(firm, "/v1/consents/"+old+"/revoke")
			e.clock.Advance(time.Second) // the new grant is the newer consent
			return e.grant(firm, bank, []string{"tax"}, purpose, nil), []string{"tax"}
		}, [6]string{stOK, stOK, stScope, stScope, stOK, stOK}},
	}
	type built struct {
		bank, consent string
		scopes        []string
	}
	made := make([]built, len(states))
	for i, s := range states {
		bank := fmt.Sprintf("BANK-ST-%02d", i)
		id, scopes := s.build(bank)
		made[i] = built{bank, id, scopes}
	}
	// Two hours on: the expiring consent and request have run out, nothing
	// else has.
	e.clock.Advance(2 * time.Hour)

	run := func(phase string, only func(name string) bool) {
		grid := []string{fmt.Sprintf("%-40s %s", "state \\ route ("+phase+")", mxRouteNames())}
		for i, s := range states {
			if !only(s.name) {
				continue
			}
			line := fmt.Sprintf("%-40s", s.name)
			for j := range mxDataRoutes {
				got := e.checkDataRoute(t, phase+": "+s.name, made[i].bank, j, s.want[j], made[i].consent, made[i].scopes)
				line += fmt.Sprintf(" %-20s", got)
			}
			grid = append(grid, line)
		}
		t.Logf("consent state × data route:\n%s", strings.Join(grid, "\n"))
	}
	run("before the sweep", func(string) bool { return true })
	// The sweeper stores the expiries; the answers stay the same.
	sw, err := e.srv.SweepConsents(t.Context())
	if err != nil || sw.Expired != 2 {
		t.Errorf("sweep: %+v %v, want the expired consent and the lapsed request stored EXPIRED", sw, err)
	}
	run("after the sweep", func(name string) bool { return name == "expired" || name == "request lapsed unanswered" })
}

func mxRouteNames() string {
	var s string
	for _, r := range mxDataRoutes {
		s += fmt.Sprintf(" %-20s", r.name)
	}
	return s
}

// checkDataRoute sends data route j as bank and checks the answer against
// want (stOK or a denial code), the access event, and that an allowed answer
// holds nothing beyond scopes. It returns what it got, for the grid.
func (e *mxEnv) checkDataRoute(t *testing.T, state, bank string, j int, want, consentID string, scopes []string) string {
	t.Helper()
	route := mxDataRoutes[j]
	var body any
	if route.method == http.MethodPost {
		body = api.BatchRequest{Purpose: firmbridge.PurposeCreditAssessment, USCCs: []string{mxFirm}, Scopes: route.batchScopes}
	}
	r := e.do(route.method, route.path, e.token(rBank, bank), body)
	where := fmt.Sprintf("state %q, route %s", state, route.name)
	isBatch := route.method == http.MethodPost

	// What was decided, as the answer says it.
	got := fmt.Sprint(r.code)
	var profile json.RawMessage
	if isBatch && r.code == http.StatusOK {
		var resp struct {
			Results []struct {
				Decision string          `json:"decision"`
				Code     string          `json:"code"`
				Profile  json.RawMessage `json:"profile"`
			} `json:"results"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil || len(resp.Results) != 1 {
			t.Errorf("%s: %s, want one result", where, r)
			return "?"
		}
		res := resp.Results[0]
		if got = stOK; res.Decision != api.BatchAllow {
			got = res.Code
			if res.Decision != api.BatchDeny || len(res.Profile) > 0 && string(res.Profile) != "null" {
				t.Errorf("%s: result %+v, want a denial without a profile", where, res)
			}
		}
		profile = res.Profile
	} else if r.code != http.StatusOK {
		got = r.problemCode()
		if r.code != http.StatusForbidden || got == "" {
			t.Errorf("%s: %s, want 403 problem+json", where, r)
		}
	} else {
		got, profile = stOK, r.body
	}
	if got != want {
		t.Errorf("%s: got %s, want %s; %s", where, got, want, r)
	}

	// Exactly one access event, saying the same.
	if len(r.events) != 1 {
		t.Errorf("%s: %d access events, want exactly 1", where, len(r.events))
	} else {
		ev := r.events[0]
		wantDecision, wantReason, wantStatus := firmbridge.DecisionAllow, "", http.StatusOK
		if got != stOK {
			wantDecision, wantReason, wantStatus = firmbridge.DecisionDeny, got, http.StatusForbidden
		}
		if ev.Decision != wantDecision || ev.Reason != wantReason || ev.Status != wantStatus || ev.USCC != mxFirm ||
			ev.Purpose != firmbridge.PurposeCreditAssessment || ev.Role != rBank || ev.Org != bank {
			t.Errorf("%s: access event %+v, want %s %q %d for %s, purpose credit_assessment, by %s", where, ev,
				wantDecision, wantReason, wantStatus, mxFirm, bank)
		}
		if got == stOK {
			wantScopes := scopes
			switch {
			case route.scope != "":
				wantScopes = []string{route.scope}
			case route.batchScopes != nil:
				wantScopes = intersectScopes(scopes, route.batchScopes)
			}
			if ev.ConsentID != consentID || !sameSet(ev.Scopes, wantScopes) {
				t.Errorf("%s: access event names consent %q scopes %v, want %s %v", where, ev.ConsentID, ev.Scopes, consentID, wantScopes)
			}
		}
	}
	if got != stOK || r.code != http.StatusOK {
		if strings.Contains(string(r.body), `"items"`) || strings.Contains(string(r.body), `"tax":`) {
			t.Errorf("%s: a refusal carries data: %s", where, r)
		}
		return got
	}

	// Allowed: nothing beyond the consent's scopes.
	if route.scope != "" {
		var page struct {
			ConsentID string           `json:"consent_id"`
			Items     []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil || page.ConsentID != consentID || len(page.Items) == 0 {
			t.Errorf("%s: listing %s, want items under consent %s", where, r, consentID)
		}
		for _, it := range page.Items {
			if src, _ := it["source"].(string); !slices.Contains(firmbridge.ScopeSources[route.scope], src) {
				t.Errorf("%s: item of source %q outside scope %s", where, src, route.scope)
			}
		}
		return got
	}
	served := scopes
	if route.batchScopes != nil {
		served = intersectScopes(scopes, route.batchScopes)
	}
	wantSections := mxSectionsFor(served)
	present, listed := mxSections(t, profile)
	if !slices.Equal(listed, wantSections) {
		t.Errorf("%s: profile lists sections %v, want %v", where, listed, wantSections)
	}
	for _, s := range present {
		if !slices.Contains(wantSections, s) {
			t.Errorf("%s: profile carries section %s beyond the consent's scopes %v", where, s, served)
		}
	}
	for _, s := range []string{firmbridge.SectionIdentity, firmbridge.SectionTax, firmbridge.SectionPatents, firmbridge.SectionOperations} {
		if slices.Contains(wantSections, s) && !slices.Contains(present, s) {
			t.Errorf("%s: profile lacks section %s, which the consent covers and the firm has data for", where, s)
		}
	}
	var p firmbridge.Profile
	if err := json.Unmarshal(profile, &p); err != nil || p.ConsentID != consentID {
		t.Errorf("%s: profile under consent %q, want %s", where, p.ConsentID, consentID)
	}
	return got
}

func intersectScopes(have, want []string) []string {
	var out []string
	for _, s := range have {
		if slices.Contains(want, s) {
			out = append(out, s)
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestMatrix_Ownership(t *testing.T) {
	e := newMxEnv(t, nil)
	const (
		bankX = "BANK-OWN-X"
		bankY = "BANK-OWN-Y"
		firmA = mxFirm
		firmB = mxOtherFirm
	)
	credit := firmbridge.PurposeCreditAssessment
	cAX := e.grant(firmA, bankX, []string{"tax"}, credit, nil)
	cBX := e.grant(firmB, bankX, []string{"tax"}, credit, nil)
	cAY := e.grant(firmA, bankY, []string{"tax"}, credit, nil)
	rAX := e.request(bankX, firmA, []string{"patent"}, firmbridge.PurposeRiskReview)
	rBX := e.request(bankX, firmB, []string{"patent"}, firmbridge.PurposeRiskReview)
	rAY := e.request(bankY, firmA, []string{"patent"}, firmbridge.PurposeRiskReview)
	entA, entB := e.token(rEnt, firmA), e.token(rEnt, firmB)
	bX, bY := e.token(rBank, bankX), e.token(rBank, bankY)

	// list returns the ids a listing answers, after checking its one event.
	list := func(t *testing.T, path, token, key string) []string {
		t.Helper()
		r := e.do(http.MethodGet, path, token, nil)
		r.wantOK(t, http.StatusOK)
		var body map[string][]firmbridge.Consent
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("%s", r)
		}
		var ids []string
		for _, c := range body[key] {
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		return ids
	}
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }

	t.Run("listings show only the caller's own", func(t *testing.T) {
		for _, tc := range []struct {
			who, path, token, key string
			want                  []string
		}{
			{"firm A", "/v1/consents", entA, "consents", sorted(cAX, cAY, rAX, rAY)},
			{"firm A", "/v1/consents?uscc=" + strings.ToLower(firmA), entA, "consents", sorted(cAX, cAY, rAX, rAY)},
			{"firm A", "/v1/consent-requests", entA, "consent_requests", sorted(rAX, rAY)},
			{"firm B", "/v1/consents", entB, "consents", sorted(cBX, rBX)},
			{"bank X", "/v1/consents", bX, "consents", sorted(cAX, cBX, rAX, rBX)},
			{"bank X", "/v1/consents?uscc=" + firmA, bX, "consents", sorted(cAX, rAX)},
			{"bank X", "/v1/consent-requests", bX, "consent_requests", sorted(rAX, rBX)},
			{"bank Y", "/v1/consents", bY, "consents", sorted(cAY, rAY)},
			{"bank Y", "/v1/consent-requests?uscc=" + firmA, bY, "consent_requests", sorted(rAY)},
		} {
			if got := list(t, tc.path, tc.token, tc.key); !slices.Equal(got, tc.want) {
				t.Errorf("%s: GET %s lists %v, want %v", tc.who, tc.path, got, tc.want)
			}
		}
	})

	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		code         string
	}{
		// An enterprise acts only for its own USCC.
		{"firm A lists firm B's consents", "GET", "/v1/consents?uscc=" + firmB, entA, nil, 403, "forbidden"},
		{"firm A lists firm B's requests", "GET", "/v1/consent-requests?uscc=" + firmB, entA, nil, 403, "forbidden"},
		{"firm A reads firm B's consent", "GET", "/v1/consents/" + cBX, entA, nil, 404, "consent_not_found"},
		{"firm A reads firm B's receipts", "GET", "/v1/consents/" + cBX + "/receipts", entA, nil, 404, "consent_not_found"},
		{"firm A reads firm B's request", "GET", "/v1/consent-requests/" + rBX, entA, nil, 404, "consent_request_not_found"},
		{"firm A grants for firm B", "POST", "/v1/consents", entA,
			map[string]any{"uscc": firmB, "grantee": bankY, "scopes": []string{"tax"}, "purpose": credit}, 400, "invalid_body"},
		{"firm A approves firm B's request", "POST", "/v1/consent-requests/" + rBX + "/approve", entA, nil, 403, "forbidden"},
		{"firm A rejects firm B's request", "POST", "/v1/consent-requests/" + rBX + "/reject", entA, nil, 403, "forbidden"},
		{"firm A revokes firm B's consent", "POST", "/v1/consents/" + cBX + "/revoke", entA, nil, 404, "consent_not_found"},
		{"enterprise token whose org is no USCC lists", "GET", "/v1/consents", e.token(rEnt, "ACME-LTD"), nil, 403, "enterprise_org_invalid"},
		{"enterprise token whose org is no USCC grants", "POST", "/v1/consents", e.token(rEnt, "ACME-LTD"),
			map[string]any{"grantee": bankY, "scopes": []string{"tax"}, "purpose": credit}, 403, "enterprise_org_invalid"},
		// A bank acts only for its own institution.
		{"bank Y reads bank X's consent", "GET", "/v1/consents/" + cAX, bY, nil, 404, "consent_not_found"},
		{"bank Y reads bank X's receipts", "GET", "/v1/consents/" + cAX + "/receipts", bY, nil, 404, "consent_not_found"},
		{"bank Y reads bank X's request", "GET", "/v1/consent-requests/" + rAX, bY, nil, 404, "consent_request_not_found"},
		{"bank Y revokes bank X's consent", "POST", "/v1/consents/" + cAX + "/revoke", bY, nil, 404, "consent_not_found"},
		{"bank Y asks on behalf of bank X", "POST", "/v1/consent-requests", bY,
			map[string]any{"uscc": firmA, "grantee": bankX, "scopes": []string{"tax"}, "purpose": credit,
				"expires_at": e.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)}, 400, "invalid_body"},
		{"bank Y reads firm B's data under bank X's consent", "GET", "/v1/firms/" + firmB + "/tax?purpose=credit_assessment", bY, nil, 403, "consent_required"},
		{"bank token whose org is no institution id asks", "POST", "/v1/consent-requests", e.token(rBank, "BANK X"),
			map[string]any{"uscc": firmA, "scopes": []string{"tax"}, "purpose": credit,
				"expires_at": e.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)}, 403, "bank_org_invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.method, tc.path, tc.token, tc.body).wantProblem(t, tc.status, tc.code)
		})
	}

	t.Run("nothing changed", func(t *testing.T) {
		status := func(token, path string) string {
			r := e.do(http.MethodGet, path, token, nil)
			var c firmbridge.Consent
			_ = json.Unmarshal(r.body, &c)
			return c.Status
		}
		if s := status(entB, "/v1/consents/"+cBX); s != firmbridge.ConsentActive {
			t.Errorf("firm B's consent is %s after firm A tried to revoke it, want ACTIVE", s)
		}
		if s := status(entB, "/v1/consent-requests/"+rBX); s != firmbridge.ConsentPending {
			t.Errorf("firm B's request is %s after firm A answered it, want PENDING", s)
		}
		if got := list(t, "/v1/consents", entB, "consents"); !slices.Equal(got, sorted(cBX, rBX)) {
			t.Errorf("firm B's consents %v, want only %v", got, sorted(cBX, rBX))
		}
		if got := list(t, "/v1/consents", bY, "consents"); !slices.Equal(got, sorted(cAY, rAY)) {
			t.Errorf("bank Y's consents %v, want only %v", got, sorted(cAY, rAY))
		}
	})
}

// mxAttacks are the token attacks of tokens_test.go's attacks() sent to
// every authenticated route.
var mxAttacks = []string{"alg none", "HMAC signed with the public key", "unknown kid", "known kid, another key's signature",
	"bad signature", "claims altered after signing", "expired", "wrong audience", "wrong issuer", "unknown role", "no exp"}

func TestMatrix_TokenAttacks(t *testing.T) {
	e := newMxEnv(t, func(s *api.Server) {
		s.Tokens.Now, s.Tokens.Leeway = func() time.Time { return attackNow }, 30*time.Second
	})
	all := attacks(t, e.tokens.Signing)
	fx := &mxFixture{readConsent: "00000000-0000-4000-8000-000000000001", revokeConsent: "00000000-0000-4000-8000-000000000001",
		approveReq: "00000000-0000-4000-8000-000000000002", rejectReq: "00000000-0000-4000-8000-000000000002", disableClient: "no-such-client"}
	var authenticated []string
	for _, route := range e.routes() {
		if (strings.HasPrefix(route, "POST /v1/") || strings.HasPrefix(route, "GET /v1/")) && route != "POST /v1/auth/token" {
			authenticated = append(authenticated, route)
		}
	}
	if len(authenticated) == 0 {
		t.Fatal("no authenticated route found")
	}
	sends := map[string]string{"no token": "", "not a JWT": "not-a-jwt"}
	for _, name := range mxAttacks {
		raw, ok := all[name]
		if !ok {
			t.Fatalf("tokens_test.go has no attack %q", name)
		}
		sends[name] = raw
	}
	for _, route := range authenticated {
		method, path, body := mxRequest(route, fx)
		for name, raw := range sends {
			r := e.do(method, path, raw, body)
			code := r.problemCode()
			if r.code != http.StatusUnauthorized || !strings.HasPrefix(code, "token_") {
				t.Errorf("%s with %s: got %d %q, want 401 token_*; %s", route, name, r.code, code, r)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s with %s: WWW-Authenticate %q, want a Bearer challenge", route, name, r.header.Get("WWW-Authenticate"))
			}
			// A failed authentication is an access event too, within a
			// budget per client address (api/audit_authfail.go): at most
			// one, naming no one, since nothing in the token is trusted.
			if len(r.events) > 1 {
				t.Errorf("%s with %s wrote %d access events, want at most 1", route, name, len(r.events))
			}
			for _, ev := range r.events {
				if ev.Decision != firmbridge.DecisionDeny || !strings.HasPrefix(ev.Reason, "token_") || ev.Role != "" || ev.Org != "" {
					t.Errorf("%s with %s: access event %+v, want a deny with a token_* reason naming no one", route, name, ev)
				}
			}
		}
	}
	// Nothing an attack sent reached a handler: no consent, no request.
	if got, err := e.srv.Consents.ConsentsForFirm(t.Context(), mxFirm); err != nil || len(got) != 0 {
		t.Errorf("consents of %s after the attacks: %d (%v), want none", mxFirm, len(got), err)
	}
	// The control: the same requests with a valid token pass authentication.
	for _, route := range authenticated {
		method, path, body := mxRequest(route, fx)
		if r := e.do(method, path, all["valid control"], body); r.code == http.StatusUnauthorized {
			t.Errorf("%s with a valid token: %s", route, r)
		}
	}
}

func TestMatrix_RateLimit(t *testing.T) {
	var e *mxEnv
	e = newMxEnv(t, func(s *api.Server) {
		s.RateLimits = api.NewRateLimiter(map[string]api.Rate{rBank: {PerSecond: 0.5, Burst: 2}}, func() time.Time { return e.clock.Now() })
	})
	const bankX, bankY = "BANK-RL-X", "BANK-RL-Y"
	credit := firmbridge.PurposeCreditAssessment
	e.grant(mxFirm, bankX, []string{"tax"}, credit, nil)
	e.grant(mxFirm, bankY, []string{"tax"}, credit, nil)
	tax := "/v1/firms/" + mxFirm + "/tax?purpose=credit_assessment"
	x1, x2 := e.token(rBank, bankX), e.token(rBank, bankX, "second-user@"+bankX)
	y := e.token(rBank, bankY)

	e.do(http.MethodGet, tax, x1, nil).wantOK(t, 200)
	e.do(http.MethodGet, tax, x1, nil).wantOK(t, 200)
	limited := func(r mxResp) {
		t.Helper()
		r.wantProblem(t, http.StatusTooManyRequests, "rate_limited")
		// The bucket of 2 is empty; one token comes back in 1/0.5 s.
		if got := r.header.Get("Retry-After"); got != "2" {
			t.Errorf("%s: Retry-After %q, want 2", r, got)
		}
		if strings.Contains(string(r.body), `"items"`) {
			t.Errorf("a limited request carries data: %s", r)
		}
	}
	r := e.do(http.MethodGet, tax, x1, nil)
	limited(r)
	if len(r.events) == 1 && (r.events[0].USCC != mxFirm || r.events[0].Purpose != credit || r.events[0].Org != bankX) {
		t.Errorf("the 429's access event %+v does not name the firm, purpose and bank", r.events[0])
	}
	// The bucket is the institution's, not the token's; every route shares it.
	limited(e.do(http.MethodGet, tax, x2, nil))
	limited(e.do(http.MethodGet, "/v1/consents", x2, nil))
	limited(e.do(http.MethodPost, "/v1/profiles/batch", x1, api.BatchRequest{Purpose: credit, USCCs: []string{mxFirm, mxOtherFirm}}))
	// Another bank, and roles without a limit, are unaffected.
	e.do(http.MethodGet, tax, y, nil).wantOK(t, 200)
	e.do(http.MethodGet, tax, y, nil).wantOK(t, 200)
	for range 5 {
		e.do(http.MethodGet, "/v1/consents", e.token(rEnt, mxFirm), nil).wantOK(t, 200)
	}
	// Once Retry-After has passed, the bank is served again.
	e.clock.Advance(2 * time.Second)
	e.do(http.MethodGet, tax, x2, nil).wantOK(t, 200)
	limited(e.do(http.MethodGet, tax, x1, nil))
}
