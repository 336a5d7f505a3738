package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Consent requests: a bank asks a firm for consent, the firm approves or
// rejects. A request is a consent stored PENDING with RequestedBy set and
// the asking bank as grantee; approving makes that very consent ACTIVE, so
// its id, terms and receipt chain carry through.

// ConsentRequestBody is the body of POST /v1/consent-requests. The grantee
// is always the asking bank's own institution.
type ConsentRequestBody struct {
	USCC      string     `json:"uscc"`
	Scopes    []string   `json:"scopes"`
	Purpose   string     `json:"purpose"`
	ValidFrom *time.Time `json:"valid_from"`
	ExpiresAt *time.Time `json:"expires_at"`
	DataFrom  *time.Time `json:"data_from"`
	Note      string     `json:"note"`
}

func (s *Server) handleCreateConsentRequest(c *gin.Context) {
	ev := s.newEvent(c)
	var req ConsentRequestBody
	if err := decodeBody(c, &req, false); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, receipt, err := s.RequestConsent(c.Request.Context(), id, req)
	if consent == nil {
		// What was asked, for the audit, bounded: the body is the caller's.
		if uscc := strings.TrimSpace(req.USCC); len(uscc) <= 64 {
			ev.USCC = uscc
		}
		if len(req.Scopes) <= len(firmbridge.Scopes) && len(req.Purpose) <= 64 {
			ev.Scopes, ev.Purpose = req.Scopes, req.Purpose
		}
	}
	eventConsent(ev, consent)
	s.respond(c, ev, http.StatusCreated, withReceipt(consent, receipt), err)
}

// RequestConsent records a bank's request for consent, PENDING until the
// firm answers. expires_at is required: the firm must see how long it is
// asked for.
func (s *Server) RequestConsent(ctx context.Context, id firmbridge.Identity, req ConsentRequestBody) (*firmbridge.Consent, *firmbridge.ConsentReceipt, error) {
	if strings.TrimSpace(req.USCC) == "" {
		return nil, nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: "uscc is required"}
	}
	uscc, err := connectors.NormalizeUSCC(req.USCC)
	if err != nil {
		return nil, nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: err.Error()}
	}
	if !firmbridge.ValidInstitution(id.Org) {
		return nil, nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "bank_org_invalid", "a bank token's org must be an institution id")
	}
	// A client asks only for what it may read: consent to more would name
	// the bank as reader of data this client never sees.
	// A client asks only for what it may read: consent to more would name
	// the bank as reader of data this client never sees.
	if err := checkTokenScopes(id, req.Scopes); err != nil {
		return nil, nil, err
	}
	c, err := s.draftConsent(id, terms{uscc: uscc, grantee: id.Org, scopes: req.Scopes, purpose: req.Purpose, note: strings.TrimSpace(req.Note),
		validFrom: req.ValidFrom, expiresAt: req.ExpiresAt, dataFrom: req.DataFrom, expiryRequired: true}, firmbridge.ConsentPending)
	if err != nil {
		return nil, nil, err
	}
	c.RequestedBy = id.Subject
	r, err := s.commitChange(ctx, nil, c, firmbridge.ConsentEventRequested)
	if r == nil {
		return nil, nil, err
	}
	return c, r, err
}

func (s *Server) handleListConsentRequests(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	list, err := s.listConsents(c, id, ev, true)
	s.respond(c, ev, http.StatusOK, gin.H{"consent_requests": list}, err)
}

func (s *Server) handleGetConsentRequest(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, err := s.visibleConsent(c.Request.Context(), id, c.Param("id"))
	if err == nil && consent.RequestedBy == "" {
		consent, err = nil, requestNotFound(c.Param("id"))
	}
	if firmbridge.ErrorCode(err) == "consent_not_found" {
		err = requestNotFound(c.Param("id"))
	}
	eventConsent(ev, consent)
	if consent != nil {
		s.setEffective([]*firmbridge.Consent{consent})
	}
	s.respond(c, ev, http.StatusOK, consent, err)
}

func (s *Server) handleApproveConsentRequest(c *gin.Context) { s.handleAnswer(c, true) }

func (s *Server) handleRejectConsentRequest(c *gin.Context) { s.handleAnswer(c, false) }

func (s *Server) handleAnswer(c *gin.Context, approve bool) {
	ev := s.newEvent(c)
	var body ReasonBody
	if err := decodeBody(c, &body, true); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	if approve && body.Reason != "" {
		s.respond(c, ev, 0, nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_body", Field: "reason",
			Message: "an approval takes no reason"})
		return
	}
	if err := checkReason(body.Reason); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, receipt, err := s.AnswerConsentRequest(c.Request.Context(), id, c.Param("id"), approve, body.Reason)
	eventConsent(ev, consent)
	s.respond(c, ev, http.StatusOK, withReceipt(consent, receipt), err)
}

// AnswerConsentRequest approves (PENDING → ACTIVE) or rejects (PENDING →
// REJECTED) a request addressed to the caller's firm. An approved consent
// starts when it is approved, or at the requested valid_from if that is
// later. Answering anything not PENDING is a conflict. On a refusal it
// returns the consent as it is, for the access event.
func (s *Server) AnswerConsentRequest(ctx context.Context, id firmbridge.Identity, consentID string, approve bool, reason string) (*firmbridge.Consent, *firmbridge.ConsentReceipt, error) {
	if err := checkConsentID(consentID); err != nil {
		return nil, nil, err
	}
	uscc, err := enterpriseUSCC(id)
	if err != nil {
		return nil, nil, err
	}
	unlock := s.consentLocks.lock(consentID)
	defer unlock()
	c, err := s.Consents.Consent(ctx, consentID)
	switch {
	case firmbridge.ErrorKind(err) == firmbridge.ENOTFOUND:
		return nil, nil, requestNotFound(consentID)
	case err != nil:
		return nil, nil, err
	case c.RequestedBy == "" && c.USCC == uscc:
		return c, nil, requestNotFound(consentID)
	case c.USCC != uscc:
		// The issue asks for 403 here rather than the 404 that hides other
		// firms' consents: consent ids are random UUIDs, so this tells an
		// enterprise nothing it could guess.
		return c, nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "forbidden", "consent request %s is not addressed to your firm", consentID)
	}
	now := s.now().UTC()
	action := "rejected"
	if approve {
		action = "approved"
	}
	switch status := c.EffectiveStatus(now); {
	case c.Status == firmbridge.ConsentPending && status == firmbridge.ConsentExpired:
		return c, nil, firmbridge.Errorf(firmbridge.ECONFLICT, "consent_request_expired",
			"consent request %s lapsed unanswered at %s and cannot be %s", c.ID, c.ExpiresAt.Format(time.RFC3339), action)
	case c.Status != firmbridge.ConsentPending:
		return c, nil, firmbridge.Errorf(firmbridge.ECONFLICT, "consent_request_not_pending",
			"consent request %s is %s, not PENDING, and cannot be %s", c.ID, status, action)
	}
	next := *c
	next.UpdatedAt, next.UpdatedBy = now.Truncate(time.Second), id.Subject
	next.Version = max(c.Version+1, firmbridge.VersionOf(now))
	event := firmbridge.ConsentEventRejected
	if approve {
		event = firmbridge.ConsentEventApproved
		next.Status = firmbridge.ConsentActive
		// A consent does not reach back before the firm agreed.
		if next.ValidFrom.Before(next.UpdatedAt) {
			next.ValidFrom = next.UpdatedAt
		}
	} else {
		next.Status, next.Reason = firmbridge.ConsentRejected, strings.TrimSpace(reason)
	}
	r, err := s.commitChange(ctx, c, &next, event)
	if r == nil {
		return c, nil, err
	}
	return &next, r, err
}

func requestNotFound(id string) error {
	return firmbridge.Errorf(firmbridge.ENOTFOUND, "consent_request_not_found", "no consent request with id %s", id)
}
