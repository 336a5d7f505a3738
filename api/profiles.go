package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Page sizes of the detail listings.
const (
	DefaultRecordLimit = 100
	MaxRecordLimit     = 1000
)

// maxCursorLen bounds a cursor: ours are well under 300 characters.
const maxCursorLen = 1024

func (s *Server) handleProfile(c *gin.Context) {
	ev := s.newEvent(c)
	ev.USCC, ev.Purpose = c.Param("uscc"), c.Query("purpose")
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	var p *firmbridge.Profile
	err := onlyParams(c.Request.URL.Query(), "purpose")
	if err == nil {
		p, err = s.Profile(c.Request.Context(), id, c.Param("uscc"), c.Query("purpose"), ev)
	}
	s.respond(c, ev, http.StatusOK, p, err)
}

// Profile decides whether the bank may read the firm for purpose and, if
// so, reads the sections its consent covers. It fills ev with what was
// decided; the caller records ev before anything is returned.
func (s *Server) Profile(ctx context.Context, id firmbridge.Identity, rawUSCC, purpose string, ev *firmbridge.AccessEvent) (*firmbridge.Profile, error) {
	uscc, err := normalizeUSCC(rawUSCC)
	if err != nil {
		return nil, err
	}
	ev.USCC = uscc
	if err := checkPurpose(purpose); err != nil {
		return nil, err
	}
	if id.Role != firmbridge.RoleBank {
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "only banks read firm profiles")
	}
	consent, err := s.liveConsent(ctx, id.Org, uscc, purpose)
	if err != nil {
		return nil, err
	}
	ev.ConsentID = consent.ID
	scopes, err := tokenNarrowed(id, consent, consent.Scopes)
	if err != nil {
		return nil, err
	}
	ev.Scopes = scopes
	read, err := s.Profiles.ReadProfiles(ctx, []firmbridge.ProfileRequest{{USCC: uscc, Scopes: scopes,
		DataFrom: firmbridge.DataFloor(consent.DataFrom)}})
	if err != nil {
		return nil, err
	}
	return finishProfile(read[uscc], uscc, purpose, consent, id.Scopes, nil), nil
}

// tokenNarrowed returns the scopes of wanted (which the consent covers)
// that the caller's token was granted too. When the token leaves none,
// the read is refused as insufficient_scope: a profile of no sections
// would look like a firm without data.
func tokenNarrowed(id firmbridge.Identity, consent *firmbridge.Consent, wanted []string) ([]string, error) {
	if id.Scopes == nil {
		return wanted, nil
	}
	scopes := intersect(wanted, id.Scopes)
	if len(scopes) == 0 {
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, codeInsufficientScope,
			"the token was granted none of the scopes the consent %s covers here (%s); its scopes are: %s",
			consent.ID, strings.Join(wanted, ", "), strings.Join(id.Scopes, ", "))
	}
	return scopes, nil
}

// codeInsufficientScope is RFC 6750's error for a token whose scopes do
// not reach the data asked for (403, with a Bearer challenge).
const codeInsufficientScope = "insufficient_scope"

// insufficientScope refuses data of scope to a token not granted it.
func insufficientScope(id firmbridge.Identity, scope string) error {
	return firmbridge.Errorf(firmbridge.EFORBIDDEN, codeInsufficientScope,
		"the token was not granted scope %s; its scopes are: %s", scope, strings.Join(id.Scopes, ", "))
}

// checkTokenScopes refuses the first scope of scopes the token was not
// granted. Unknown scopes are left to the request's own checks, which name
// the vocabulary.
func checkTokenScopes(id firmbridge.Identity, scopes []string) error {
	for _, sc := range scopes {
		if firmbridge.ValidScope(sc) && !id.Allows(sc) {
			return insufficientScope(id, sc)
		}
	}
	return nil
}

// finishProfile adds the consent's side to the data the reader returned:
// which sections are served and which are withheld, and why. token and
// requested, when not nil, limit the scopes served: the caller's token
// scopes, and the scopes a batch asked for.
func finishProfile(p *firmbridge.Profile, uscc, purpose string, consent *firmbridge.Consent, token, requested []string) *firmbridge.Profile {
	if p == nil {
		p = &firmbridge.Profile{USCC: uscc, Identity: &firmbridge.FirmIdentity{USCC: uscc, Sources: []string{}}}
	}
	p.Purpose, p.ConsentID = purpose, consent.ID
	if f := firmbridge.DataFloor(consent.DataFrom); !f.IsZero() {
		p.DataFrom = f.Format(time.DateOnly)
	}
	p.Sections, p.Withheld = []string{firmbridge.SectionIdentity}, []firmbridge.WithheldSection{}
	for _, section := range []string{firmbridge.SectionTax, firmbridge.SectionPatents, firmbridge.SectionOperations, firmbridge.SectionConsistency} {
		var missing, notInToken, unasked []string
		for _, scope := range firmbridge.SectionScopes[section] {
			switch {
			case !slices.Contains(consent.Scopes, scope):
				missing = append(missing, scope)
			case token != nil && !slices.Contains(token, scope):
				notInToken = append(notInToken, scope)
			case requested != nil && !slices.Contains(requested, scope):
				unasked = append(unasked, scope)
			}
		}
		switch {
		case len(missing) > 0:
			p.Withheld = append(p.Withheld, firmbridge.WithheldSection{Section: section, Reason: firmbridge.WithheldScopeNotGranted, Scopes: missing})
		case len(notInToken) > 0:
			p.Withheld = append(p.Withheld, firmbridge.WithheldSection{Section: section, Reason: firmbridge.WithheldScopeNotInToken, Scopes: notInToken})
		case len(unasked) > 0:
			p.Withheld = append(p.Withheld, firmbridge.WithheldSection{Section: section, Reason: firmbridge.WithheldNotRequested, Scopes: unasked})
		default:
			p.Sections = append(p.Sections, section)
			continue
		}
		// The reader only fills sections it was asked for; clearing here
		// keeps that promise even if it filled more.
		switch section {
		case firmbridge.SectionTax:
			p.Tax = nil
		case firmbridge.SectionPatents:
			p.Patents = nil
		case firmbridge.SectionOperations:
			p.Operations = nil
		case firmbridge.SectionConsistency:
			p.Consistency = nil
		}
	}
	return p
}

func normalizeUSCC(raw string) (string, error) {
	uscc, err := connectors.NormalizeUSCC(raw)
	if err != nil {
		return "", &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: err.Error()}
	}
	return uscc, nil
}

func checkPurpose(purpose string) error {
	if purpose == "" {
		return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "purpose_required", Field: "purpose", Message: "the query parameter purpose is required: credit_assessment, loan_monitoring or risk_review"}
	}
	if !firmbridge.ValidPurpose(purpose) {
		return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_purpose", Field: "purpose", Message: "purpose must be credit_assessment, loan_monitoring or risk_review"}
	}
	return nil
}

// liveConsent returns the newest consent of uscc to grantee that is active
// now for purpose. Without one, the error says why, so that the bank knows
// whether to ask for a new consent or for another purpose.
func (s *Server) liveConsent(ctx context.Context, grantee, uscc, purpose string) (*firmbridge.Consent, error) {
	return s.liveConsentFor(ctx, grantee, uscc, purpose, "")
}

// liveConsentFor is liveConsent for one scope ("" for any).
func (s *Server) liveConsentFor(ctx context.Context, grantee, uscc, purpose, scope string) (*firmbridge.Consent, error) {
	consents, err := s.Consents.ConsentsForGrantee(ctx, grantee, uscc)
	if err != nil {
		return nil, err
	}
	return chooseConsent(consents, grantee, uscc, purpose, scope, s.now())
}

// chooseConsent picks, among a firm's consents to grantee (newest first),
// the newest active for purpose that covers scope ("" for any scope).
func chooseConsent(consents []*firmbridge.Consent, grantee, uscc, purpose, scope string, now time.Time) (*firmbridge.Consent, error) {
	var newestForPurpose, activeOtherScope *firmbridge.Consent
	otherPurpose := false
	for _, c := range consents { // newest first
		if c.USCC != uscc || !c.Granted() {
			continue
		}
		active := c.EffectiveStatus(now) == firmbridge.ConsentActive
		if c.Purpose != purpose {
			otherPurpose = otherPurpose || active
			continue
		}
		if active {
			if scope == "" || slices.Contains(c.Scopes, scope) {
				return c, nil
			}
			if activeOtherScope == nil {
				activeOtherScope = c
			}
		}
		if newestForPurpose == nil {
			newestForPurpose = c
		}
	}
	switch {
	case activeOtherScope != nil:
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, firmbridge.WithheldScopeNotGranted,
			"the consent %s of firm %s for %s does not cover scope %s", activeOtherScope.ID, uscc, purpose, scope)
	case newestForPurpose != nil && newestForPurpose.EffectiveStatus(now) == firmbridge.ConsentRevoked:
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "consent_revoked",
			"firm %s revoked its consent %s for %s; ask the firm for a new consent", uscc, newestForPurpose.ID, purpose)
	case newestForPurpose != nil && newestForPurpose.EffectiveStatus(now) == firmbridge.ConsentExpired:
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "consent_expired",
			"the consent %s of firm %s for %s expired at %s", newestForPurpose.ID, uscc, purpose, newestForPurpose.ExpiresAt.Format(time.RFC3339))
	case otherPurpose:
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "purpose_not_granted",
			"firm %s consented to %s for another purpose, not for %s", uscc, grantee, purpose)
	}
	return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "consent_required",
		"firm %s has no active consent for %s to read its data for %s", uscc, grantee, purpose)
}

// RecordsPage is the answer of a detail listing.
type RecordsPage[T any] struct {
	USCC      string `json:"uscc"`
	Purpose   string `json:"purpose"`
	ConsentID string `json:"consent_id"`
	// DataFrom is the consent's earliest data date, "" when unlimited.
	DataFrom string `json:"data_from,omitempty"`
	Limit    int    `json:"limit"`
	Items    []T    `json:"items"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor"`
}

// listing describes one detail endpoint.
type listing struct {
	scope  string
	params []string // accepted query parameters
	multi  []string // of those, the ones that take several values
	kinds  []string // values of kind (patents)
	states []string // values of status (patents)
}

var (
	taxListing = listing{scope: firmbridge.ScopeTax, params: []string{"purpose", "limit", "cursor", "from", "to", "source"},
		multi: []string{"source"}}
	patentListing = listing{scope: firmbridge.ScopePatent, params: []string{"purpose", "limit", "cursor", "from", "to", "kind", "status"},
		multi:  []string{"kind", "status"},
		kinds:  []string{"invention", "utility_model", "design"},
		states: []string{"pending", "granted", "rejected", "withdrawn", "lapsed", "invalidated"}}
	opsListing = listing{scope: firmbridge.ScopeOperations, params: []string{"purpose", "limit", "cursor", "from", "to", "source"},
		multi: []string{"source"}}
)

func (s *Server) handleTaxRecords(c *gin.Context) {
	handleRecords(s, c, taxListing, s.Profiles.TaxRecords)
}

func (s *Server) handlePatentRecords(c *gin.Context) {
	handleRecords(s, c, patentListing, s.Profiles.PatentRecords)
}

func (s *Server) handleOperationsRecords(c *gin.Context) {
	handleRecords(s, c, opsListing, s.Profiles.OperationsRecords)
}

// handleRecords serves a detail listing: the same consent rules as the
// profile, and the consent must cover the listing's scope.
func handleRecords[T any](s *Server, c *gin.Context, l listing, read func(context.Context, firmbridge.RecordQuery) (*firmbridge.Page[T], error)) {
	ev := s.newEvent(c)
	ev.USCC, ev.Purpose, ev.Scopes = c.Param("uscc"), c.Query("purpose"), []string{l.scope}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	page, err := records(c.Request.Context(), s, id, c.Param("uscc"), c.Request.URL.Query(), l, ev, read)
	s.respond(c, ev, http.StatusOK, page, err)
}

func records[T any](ctx context.Context, s *Server, id firmbridge.Identity, rawUSCC string, params url.Values, l listing,
	ev *firmbridge.AccessEvent, read func(context.Context, firmbridge.RecordQuery) (*firmbridge.Page[T], error)) (*RecordsPage[T], error) {
	uscc, err := normalizeUSCC(rawUSCC)
	if err != nil {
		return nil, err
	}
	ev.USCC = uscc
	q, purpose, err := parseListing(params, l, uscc)
	if err != nil {
		return nil, err
	}
	if id.Role != firmbridge.RoleBank {
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "only banks read firm data")
	}
	if !id.Allows(l.scope) {
		return nil, insufficientScope(id, l.scope)
	}
	consent, err := s.liveConsentFor(ctx, id.Org, uscc, purpose, l.scope)
	if err != nil {
		return nil, err
	}
	ev.ConsentID = consent.ID
	floor := firmbridge.DataFloor(consent.DataFrom)
	q.DataFrom = floor
	page, err := read(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &RecordsPage[T]{USCC: uscc, Purpose: purpose, ConsentID: consent.ID, Limit: q.Limit, Items: page.Items}
	if !floor.IsZero() {
		out.DataFrom = floor.Format(time.DateOnly)
	}
	if out.Items == nil {
		out.Items = []T{}
	}
	if page.Next != nil {
		cur := encodeCursor(l.scope, fingerprint(l, q), *page.Next)
		out.NextCursor = &cur
	}
	return out, nil
}

func invalidParam(field, format string, args ...any) error {
	e := firmbridge.Errorf(firmbridge.EINVALID, "invalid_parameter", format, args...)
	e.Field = field
	return e
}

// onlyParams refuses parameters outside allowed, and any given twice.
func onlyParams(params url.Values, allowed ...string) error {
	return checkParams(params, allowed, nil)
}

func checkParams(params url.Values, allowed, multi []string) error {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names) // the same parameter is named whatever the map order
	for _, name := range names {
		if !slices.Contains(allowed, name) {
			return invalidParam(name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(allowed, ", "))
		}
		if len(params[name]) > 1 && !slices.Contains(multi, name) {
			return invalidParam(name, "query parameter %s is given %d times", name, len(params[name]))
		}
	}
	return nil
}

// values splits a parameter given several times or comma-separated, and
// checks each value against allowed.
func values(params url.Values, name string, allowed []string) ([]string, error) {
	var out []string
	for _, v := range params[name] {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !slices.Contains(allowed, part) {
				return nil, invalidParam(name, "%s %q is not one of %s", name, part, strings.Join(allowed, ", "))
			}
			if !slices.Contains(out, part) {
				out = append(out, part)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// parseBound reads from or to: a month (2024-03) or a date (2024-03-15).
// A month as from means its first day, as to its last.
func parseBound(params url.Values, name string, end bool) (time.Time, error) {
	v := params.Get(name)
	if v == "" {
		if _, given := params[name]; given {
			return time.Time{}, invalidParam(name, "%s is empty; give a month (2024-03) or a date (2024-03-15)", name)
		}
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil && t.Year() >= 1970 && t.Year() <= 2199 {
		return t, nil
	}
	if t, err := time.Parse("2006-01", v); err == nil && t.Year() >= 1970 && t.Year() <= 2199 {
		if end {
			return t.AddDate(0, 1, -1), nil
		}
		return t, nil
	}
	return time.Time{}, invalidParam(name, "%s %q is not a month (2024-03) or a date (2024-03-15) between 1970 and 2199", name, v)
}

func parseListing(params url.Values, l listing, uscc string) (firmbridge.RecordQuery, string, error) {
	q := firmbridge.RecordQuery{USCC: uscc, Limit: DefaultRecordLimit}
	if err := checkParams(params, l.params, l.multi); err != nil {
		return q, "", err
	}
	purpose := params.Get("purpose")
	if err := checkPurpose(purpose); err != nil {
		return q, "", err
	}
	var err error
	if _, given := params["limit"]; given {
		n, convErr := strconv.Atoi(params.Get("limit"))
		if convErr != nil || n < 1 || n > MaxRecordLimit {
			return q, "", invalidParam("limit", "limit must be a whole number from 1 to %d", MaxRecordLimit)
		}
		q.Limit = n
	}
	if q.From, err = parseBound(params, "from", false); err != nil {
		return q, "", err
	}
	if q.To, err = parseBound(params, "to", true); err != nil {
		return q, "", err
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, "", invalidParam("to", "to (%s) is before from (%s)", q.To.Format(time.DateOnly), q.From.Format(time.DateOnly))
	}
	if slices.Contains(l.params, "source") {
		if q.Sources, err = values(params, "source", firmbridge.ScopeSources[l.scope]); err != nil {
			return q, "", err
		}
	}
	if slices.Contains(l.params, "kind") {
		if q.Kinds, err = values(params, "kind", l.kinds); err != nil {
			return q, "", err
		}
	}
	if slices.Contains(l.params, "status") {
		if q.Statuses, err = values(params, "status", l.states); err != nil {
			return q, "", err
		}
	}
	if _, given := params["cursor"]; given {
		after, err := decodeCursor(params.Get("cursor"), l, fingerprint(l, q))
		if err != nil {
			return q, "", err
		}
		q.After = after
	}
	return q, purpose, nil
}

// cursor is what a next_cursor carries: the last record's position, and
// a fingerprint of the listing and filters it belongs to, so that a cursor
// is never applied to another firm's or another filter's listing. It is
// not secret; whatever it says, the consent's rules still apply.
type cursor struct {
	V      int    `json:"v"`
	Scope  string `json:"s"`
	Filter string `json:"q"`
	Date   string `json:"d"`
	Kind   string `json:"k"`
	Key    string `json:"r"`
}

func fingerprint(l listing, q firmbridge.RecordQuery) string {
	var b strings.Builder
	b.WriteString(l.scope + "|" + q.USCC + "|" + strings.Join(q.Sources, ",") + "|" + strings.Join(q.Kinds, ",") + "|" +
		strings.Join(q.Statuses, ",") + "|")
	for _, t := range []time.Time{q.From, q.To} {
		if !t.IsZero() {
			b.WriteString(t.Format(time.DateOnly))
		}
		b.WriteString("|")
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:8])
}

func encodeCursor(scope, filter string, k firmbridge.RecordKey) string {
	b, _ := json.Marshal(cursor{V: 1, Scope: scope, Filter: filter, Date: k.Date, Kind: k.Kind, Key: k.Key})
	return base64.RawURLEncoding.EncodeToString(b)
}

// badCursor is the error of every cursor a listing did not hand out.
func badCursor(msg string) error {
	return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_cursor", Field: "cursor", Message: msg}
}

// unmarshalCursor decodes an opaque cursor (base64url JSON) into v; the
// caller then checks the fields it holds.
func unmarshalCursor(raw string, v any) error {
	if raw == "" || len(raw) > maxCursorLen {
		return badCursor("cursor must be a next_cursor this endpoint returned")
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || json.Unmarshal(b, v) != nil {
		return badCursor("cursor is not a cursor this endpoint returned")
	}
	return nil
}

func decodeCursor(raw string, l listing, filter string) (*firmbridge.RecordKey, error) {
	bad := badCursor
	var cur cursor
	if err := unmarshalCursor(raw, &cur); err != nil {
		return nil, err
	}
	if cur.V != 1 {
		return nil, bad("cursor is not a cursor this endpoint returned")
	}
	if cur.Scope != l.scope || cur.Filter != filter {
		return nil, bad("cursor belongs to another listing or other filters; repeat the request that returned it")
	}
	if _, err := time.Parse(time.DateOnly, cur.Date); err != nil || cur.Key == "" || len(cur.Key) > 512 ||
		!slices.Contains(firmbridge.ScopeSources[l.scope], cur.Kind) {
		return nil, bad("cursor is not a cursor this endpoint returned")
	}
	return &firmbridge.RecordKey{Date: cur.Date, Kind: cur.Kind, Key: cur.Key}, nil
}
