package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// GrantRequest is the body of POST /v1/consents.
type GrantRequest struct {
	Grantee   string     `json:"grantee"`
	Scopes    []string   `json:"scopes"`
	Purpose   string     `json:"purpose"`
	ValidFrom *time.Time `json:"valid_from"`
	ExpiresAt *time.Time `json:"expires_at"`
	DataFrom  *time.Time `json:"data_from"`
}

// ConsentResponse is a consent after a change: its fields, and the receipt
// of the change (a compact JWS; see VerifyReceipt).
type ConsentResponse struct {
	*firmbridge.Consent
	Receipt string `json:"receipt,omitempty"`
}

func withReceipt(c *firmbridge.Consent, r *firmbridge.ConsentReceipt) *ConsentResponse {
	if c == nil {
		return nil
	}
	resp := &ConsentResponse{Consent: c}
	if r != nil {
		resp.Receipt = r.JWS
	}
	return resp
}

// eventConsent fills an access event with the consent a request touched.
func eventConsent(ev *firmbridge.AccessEvent, c *firmbridge.Consent) {
	if c != nil {
		ev.USCC, ev.ConsentID, ev.Scopes, ev.Purpose = c.USCC, c.ID, c.Scopes, c.Purpose
	}
}

func (s *Server) handleGrantConsent(c *gin.Context) {
	ev := s.newEvent(c)
	var req GrantRequest
	if err := decodeBody(c, &req, false); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, receipt, err := s.GrantConsent(c.Request.Context(), id, req)
	eventConsent(ev, consent)
	s.respond(c, ev, http.StatusCreated, withReceipt(consent, receipt), err)
}

// GrantConsent records an enterprise's consent for its own firm. A consent
// starts now unless valid_from says later, and runs at most the purpose's
// maximum, which is also its default length. On success it returns the
// consent and its granted receipt.
func (s *Server) GrantConsent(ctx context.Context, id firmbridge.Identity, req GrantRequest) (*firmbridge.Consent, *firmbridge.ConsentReceipt, error) {
	uscc, err := enterpriseUSCC(id)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.draftConsent(id, terms{uscc: uscc, grantee: strings.TrimSpace(req.Grantee), scopes: req.Scopes, purpose: req.Purpose,
		validFrom: req.ValidFrom, expiresAt: req.ExpiresAt, dataFrom: req.DataFrom}, firmbridge.ConsentActive)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.commitChange(ctx, nil, c, firmbridge.ConsentEventGranted)
	if r == nil {
		return nil, nil, err
	}
	return c, r, err
}

// terms are what a grant or a request asks for.
type terms struct {
	uscc, grantee, purpose, note string
	scopes                       []string
	validFrom, expiresAt         *time.Time
	dataFrom                     *time.Time
	expiryRequired               bool
}

// draftConsent builds a new consent in status from t and validates it.
// Times are cut to the second, data_from to its date (as written, in the
// offset it was written in), because that is what the store keeps and what
// the receipt must state.
func (s *Server) draftConsent(id firmbridge.Identity, t terms, status string) (*firmbridge.Consent, error) {
	now := s.now().UTC().Truncate(time.Second)
	c := &firmbridge.Consent{
		ID: newID(), USCC: t.uscc, Grantee: t.grantee, Scopes: t.scopes, Purpose: t.purpose, Status: status,
		ValidFrom: now, CreatedAt: now, UpdatedAt: now, UpdatedBy: id.Subject, Note: t.note, Version: firmbridge.VersionOf(s.now()),
	}
	if t.validFrom != nil {
		from := t.validFrom.UTC().Truncate(time.Second)
		switch {
		case from.Before(now.Add(-time.Minute)):
			return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_valid_from", Field: "valid_from", Message: "valid_from cannot lie in the past"}
		case from.After(now.Add(firmbridge.MaxConsentLead)):
			return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_valid_from", Field: "valid_from", Message: "valid_from may be at most 365 days ahead"}
		}
		if from.After(now) {
			c.ValidFrom = from
		}
	}
	switch {
	case t.expiresAt != nil:
		c.ExpiresAt = t.expiresAt.UTC().Truncate(time.Second)
	case t.expiryRequired:
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_expiry", Field: "expires_at", Message: "expires_at is required"}
	default:
		if longest, ok := firmbridge.MaxConsentDuration[t.purpose]; ok {
			c.ExpiresAt = c.ValidFrom.Add(longest)
		}
	}
	if t.dataFrom != nil {
		y, m, d := t.dataFrom.Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		c.DataFrom = &day
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Server) handleListConsents(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	list, err := s.listConsents(c, id, ev, false)
	s.respond(c, ev, http.StatusOK, gin.H{"consents": list}, err)
}

// listConsents lists what the caller is a party to: an enterprise its
// firm's consents, a bank those granted to it (?uscc= narrows to one firm);
// ?status= keeps one effective status. With requests set, only consents a
// bank asked for.
func (s *Server) listConsents(c *gin.Context, id firmbridge.Identity, ev *firmbridge.AccessEvent, requests bool) ([]*firmbridge.Consent, error) {
	status := strings.ToUpper(strings.TrimSpace(c.Query("status")))
	switch status {
	case "", firmbridge.ConsentPending, firmbridge.ConsentActive, firmbridge.ConsentRevoked, firmbridge.ConsentExpired, firmbridge.ConsentRejected:
	default:
		return []*firmbridge.Consent{}, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_status", Field: "status",
			Message: "status must be PENDING, ACTIVE, REVOKED, EXPIRED or REJECTED"}
	}
	var list []*firmbridge.Consent
	if id.Role == firmbridge.RoleEnterprise {
		uscc, err := enterpriseUSCC(id)
		if err != nil {
			return []*firmbridge.Consent{}, err
		}
		ev.USCC = uscc
		// An enterprise acts for its own firm only: naming another is
		// refused, not silently ignored.
		if raw := c.Query("uscc"); raw != "" {
			named, err := connectors.NormalizeUSCC(raw)
			if err != nil {
				return []*firmbridge.Consent{}, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: err.Error()}
			}
			if named != uscc {
				return []*firmbridge.Consent{}, &firmbridge.Error{Kind: firmbridge.EFORBIDDEN, Code: "forbidden", Field: "uscc",
					Message: "an enterprise token lists its own firm's consents only"}
			}
		}
		if list, err = s.Consents.ConsentsForFirm(c.Request.Context(), uscc); err != nil {
			return nil, err
		}
	} else {
		uscc := ""
		if raw := c.Query("uscc"); raw != "" {
			var err error
			if uscc, err = connectors.NormalizeUSCC(raw); err != nil {
				return []*firmbridge.Consent{}, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: err.Error()}
			}
			ev.USCC = uscc
		}
		var err error
		if list, err = s.Consents.ConsentsForGrantee(c.Request.Context(), id.Org, uscc); err != nil {
			return nil, err
		}
	}
	s.setEffective(list)
	out := []*firmbridge.Consent{}
	for _, consent := range list {
		if (status == "" || consent.Status == status) && (!requests || consent.RequestedBy != "") {
			out = append(out, consent)
		}
	}
	return out, nil
}

func (s *Server) handleGetConsent(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, err := s.visibleConsent(c.Request.Context(), id, c.Param("id"))
	eventConsent(ev, consent)
	if consent != nil {
		s.setEffective([]*firmbridge.Consent{consent})
	}
	s.respond(c, ev, http.StatusOK, consent, err)
}

// ReasonBody is the optional body of revoke and reject.
type ReasonBody struct {
	Reason string `json:"reason"`
}

func (s *Server) handleRevokeConsent(c *gin.Context) {
	ev := s.newEvent(c)
	var body ReasonBody
	if err := decodeBody(c, &body, true); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	if err := checkReason(body.Reason); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	consent, receipt, err := s.RevokeConsent(c.Request.Context(), id, c.Param("id"), body.Reason)
	eventConsent(ev, consent)
	s.respond(c, ev, http.StatusOK, withReceipt(consent, receipt), err)
}

// RevokeConsent ends a consent; the very next request under it is refused.
// It returns the revoked consent and its receipt; on a refusal, the consent
// as it is (for the access event) with the error.
func (s *Server) RevokeConsent(ctx context.Context, id firmbridge.Identity, consentID, reason string) (*firmbridge.Consent, *firmbridge.ConsentReceipt, error) {
	unlock := s.consentLocks.lock(consentID)
	defer unlock()
	c, err := s.visibleConsent(ctx, id, consentID)
	if err != nil {
		return nil, nil, err
	}
	now := s.now().UTC()
	switch status := c.EffectiveStatus(now); {
	case c.Status == firmbridge.ConsentPending && status == firmbridge.ConsentPending:
		return c, nil, firmbridge.Errorf(firmbridge.ECONFLICT, "consent_request_pending",
			"consent %s is a request awaiting an answer; approve or reject it at /v1/consent-requests/%s", c.ID, c.ID)
	case status != firmbridge.ConsentActive && status != firmbridge.ConsentPending:
		return c, nil, firmbridge.Errorf(firmbridge.ECONFLICT, "consent_not_active", "consent %s is %s and cannot be revoked", c.ID, status)
	}
	next := *c
	next.Status, next.UpdatedAt, next.UpdatedBy, next.Reason = firmbridge.ConsentRevoked, now.Truncate(time.Second), id.Subject, strings.TrimSpace(reason)
	next.Version = max(c.Version+1, firmbridge.VersionOf(now))
	r, err := s.commitChange(ctx, c, &next, firmbridge.ConsentEventRevoked)
	if r == nil {
		return c, nil, err
	}
	return &next, r, err
}

// checkReason bounds the reason given with a rejection or a revocation.
func checkReason(reason string) error {
	if utf8.RuneCountInString(strings.TrimSpace(reason)) > firmbridge.MaxConsentText {
		return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_reason", Field: "reason",
			Message: fmt.Sprintf("reason may have at most %d characters", firmbridge.MaxConsentText)}
	}
	return nil
}

// visibleConsent returns a consent the caller is a party to; anyone else
// gets not-found, so consent ids reveal nothing.
func (s *Server) visibleConsent(ctx context.Context, id firmbridge.Identity, consentID string) (*firmbridge.Consent, error) {
	if err := checkConsentID(consentID); err != nil {
		return nil, err
	}
	c, err := s.Consents.Consent(ctx, consentID)
	if err != nil {
		return nil, err
	}
	if isParty(id, c) {
		return c, nil
	}
	return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "consent_not_found", "no consent with id %s", consentID)
}

// isParty reports whether the caller is the consent's firm or its grantee.
func isParty(id firmbridge.Identity, c *firmbridge.Consent) bool {
	switch id.Role {
	case firmbridge.RoleEnterprise:
		uscc, err := enterpriseUSCC(id)
		return err == nil && c.USCC == uscc
	case firmbridge.RoleBank:
		return c.Grantee == id.Org
	}
	return false
}

// enterpriseUSCC is the firm an enterprise token acts for.
func enterpriseUSCC(id firmbridge.Identity) (string, error) {
	uscc, err := connectors.NormalizeUSCC(id.Org)
	if err != nil {
		return "", firmbridge.Errorf(firmbridge.EFORBIDDEN, "enterprise_org_invalid", "an enterprise token's org must be the firm's USCC: %v", err)
	}
	return uscc, nil
}

// checkConsentID refuses what cannot be a consent id (ids are UUIDs, or
// the demo's stable names), before it reaches a query.
func checkConsentID(id string) error {
	ok := id != "" && len(id) <= 128
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
			break
		}
	}
	if !ok {
		return &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_consent_id", Field: "id",
			Message: "a consent id is up to 128 letters, digits, '-', '_' or '.'"}
	}
	return nil
}

func (s *Server) setEffective(list []*firmbridge.Consent) {
	now := s.now()
	for _, c := range list {
		c.Status = c.EffectiveStatus(now)
	}
}

// decodeBody reads a JSON object strictly: unknown fields and trailing data
// are refused, so a misspelt field is an error rather than a default.
// With optional set, an empty body decodes to the zero value. The body's
// size is bounded by the /v1 group's limit.
func decodeBody(c *gin.Context, v any, optional bool) error {
	var data []byte
	if c.Request.Body != nil {
		var err error
		if data, err = io.ReadAll(c.Request.Body); err != nil {
			return firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "the request body could not be read")
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	e := &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_body", Message: "the body is not valid: " + err.Error()}
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		e.Message = "the body must be a JSON object"
	case errors.As(err, &typeErr):
		e.Field = typeErr.Field
		e.Message = fmt.Sprintf("field %s must be a JSON %s", typeErr.Field, jsonKind(typeErr.Type.String()))
	case errors.As(err, &timeErr):
		e.Message = "times must be RFC 3339, e.g. 2026-03-01T00:00:00+08:00: " + timeErr.Error()
	}
	return e
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case goType == "string":
		return "string"
	case strings.Contains(goType, "Time"):
		return "string holding an RFC 3339 time"
	}
	return "value of type " + goType
}

// consentLocks serialize the changes of one consent within an instance,
// so two requests racing on it (approve and reject, or two revokes) take
// turns: the second sees the first's result. Across instances ClickHouse
// offers no compare-and-set; there the newest version wins.
type consentLocks [64]sync.Mutex

func (l *consentLocks) lock(consentID string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(consentID))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// DefaultSweepInterval is how often RunConsentSweeper runs by default.
const DefaultSweepInterval = 30 * time.Second

// sweepBatch bounds one round of the sweeper.
const sweepBatch = 500

// ConsentSweep says what one sweep did.
type ConsentSweep struct {
	Expired   int // consents stored EXPIRED, with their receipts and events
	Published int // receipts whose events were published late
	Voided    int // receipts whose change was never stored
}

// SweepConsents does what time alone changes: it publishes the events a
// failed write left unannounced (and voids receipts of changes never
// stored), then stores every consent past its expiry that is still stored
// ACTIVE or PENDING as EXPIRED, with its expiry receipt and event. Every
// instance runs it; an expiry is a pure function of the consent (its time
// is the expiry, its version derived from it), so instances that expire
// the same consent write the same state and receipt, and consumers drop
// the second event by its id.
func (s *Server) SweepConsents(ctx context.Context) (ConsentSweep, error) {
	var sw ConsentSweep
	store := s.receiptStore()
	if store == nil {
		return sw, errors.New("consent sweeper: no receipt store configured (Server.Receipts)")
	}
	// Late events first, so events mostly keep the order of the changes.
	published, voided, err := s.reconcileReceipts(ctx, store, sweepBatch)
	sw.Published, sw.Voided = published, voided
	if err != nil {
		return sw, fmt.Errorf("consent sweeper: %w", err)
	}
	for range 100 { // at most 50,000 expiries per sweep; the next sweep goes on
		due, err := store.ConsentsPastExpiry(ctx, s.now(), sweepBatch)
		if err != nil {
			return sw, fmt.Errorf("consent sweeper: %w", err)
		}
		var errs []error
		for _, c := range due {
			if err := s.expireConsent(ctx, c); err != nil {
				errs = append(errs, fmt.Errorf("expire consent %s: %w", c.ID, err))
				continue
			}
			sw.Expired++
		}
		if len(errs) > 0 {
			return sw, fmt.Errorf("consent sweeper: %w", errors.Join(errs...))
		}
		if len(due) < sweepBatch || ctx.Err() != nil {
			break
		}
	}
	return sw, ctx.Err()
}

// expireConsent stores c, past its expiry, as EXPIRED. Everything it
// writes derives from c alone, so it is the same in every instance.
func (s *Server) expireConsent(ctx context.Context, c *firmbridge.Consent) error {
	unlock := s.consentLocks.lock(c.ID)
	defer unlock()
	next := *c
	next.Status, next.UpdatedAt, next.UpdatedBy = firmbridge.ConsentExpired, c.ExpiresAt.UTC(), ExpiryActor
	if c.Status == firmbridge.ConsentPending {
		next.Reason = firmbridge.ReasonRequestLapsed // never granted: see Consent.Granted
	}
	next.Version = max(c.Version+1, firmbridge.VersionOf(c.ExpiresAt))
	_, err := s.commitChange(ctx, c, &next, firmbridge.ConsentEventExpired)
	return err
}

// RunConsentSweeper sweeps every interval (DefaultSweepInterval when
// zero) until ctx ends.
func (s *Server) RunConsentSweeper(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sw, err := s.SweepConsents(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger().Warn("consent sweep failed; retrying next round", "err", err,
				"expired", sw.Expired, "published", sw.Published, "voided", sw.Voided)
		case sw != ConsentSweep{}:
			s.logger().Info("consent sweep", "expired", sw.Expired, "published", sw.Published, "voided", sw.Voided)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40 // UUID version 4
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
