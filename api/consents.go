package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

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

func (s *Server) handleGrantConsent(c *gin.Context) {
	ev := s.newEvent(c)
	var req GrantRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		s.respond(c, ev, 0, nil, firmbridge.Errorf(firmbridge.EINVALID, "invalid_body", "the body is not a consent request: %v", err))
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, err := s.GrantConsent(c.Request.Context(), id, req)
	if consent != nil {
		ev.USCC, ev.ConsentID, ev.Scopes, ev.Purpose = consent.USCC, consent.ID, consent.Scopes, consent.Purpose
	}
	s.respond(c, ev, http.StatusCreated, consent, err)
}

// GrantConsent records an enterprise's consent for its own firm. A consent
// starts now unless valid_from says later, and runs at most the purpose's
// maximum, which is also its default length.
func (s *Server) GrantConsent(ctx context.Context, id firmbridge.Identity, req GrantRequest) (*firmbridge.Consent, error) {
	uscc, err := connectors.NormalizeUSCC(id.Org)
	if err != nil {
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "enterprise_org_invalid", "an enterprise token's org must be the firm's USCC: %v", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	c := &firmbridge.Consent{
		ID: newID(), USCC: uscc, Grantee: req.Grantee, Scopes: req.Scopes, Purpose: req.Purpose,
		Status: firmbridge.ConsentActive, ValidFrom: now, DataFrom: req.DataFrom,
		CreatedAt: now, UpdatedAt: now, UpdatedBy: id.Subject, Version: firmbridge.VersionOf(s.now()),
	}
	if req.ValidFrom != nil {
		if req.ValidFrom.Before(now.Add(-time.Minute)) {
			return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_consent", Field: "valid_from", Message: "valid_from cannot lie in the past"}
		}
		c.ValidFrom = req.ValidFrom.UTC()
	}
	if req.ExpiresAt != nil {
		c.ExpiresAt = req.ExpiresAt.UTC()
	} else if max, ok := firmbridge.MaxConsentDuration[req.Purpose]; ok {
		c.ExpiresAt = c.ValidFrom.Add(max)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := s.Consents.SaveConsent(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Server) handleListConsents(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	var list []*firmbridge.Consent
	var err error
	if id.Role == firmbridge.RoleEnterprise {
		ev.USCC = id.Org
		list, err = s.Consents.ConsentsForFirm(c.Request.Context(), id.Org)
	} else {
		list, err = s.Consents.ConsentsForGrantee(c.Request.Context(), id.Org, c.Query("uscc"))
	}
	s.setEffective(list)
	if list == nil {
		list = []*firmbridge.Consent{}
	}
	s.respond(c, ev, http.StatusOK, gin.H{"consents": list}, err)
}

func (s *Server) handleGetConsent(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, err := s.visibleConsent(c.Request.Context(), id, c.Param("id"))
	if consent != nil {
		ev.USCC, ev.ConsentID, ev.Scopes, ev.Purpose = consent.USCC, consent.ID, consent.Scopes, consent.Purpose
		s.setEffective([]*firmbridge.Consent{consent})
	}
	s.respond(c, ev, http.StatusOK, consent, err)
}

func (s *Server) handleRevokeConsent(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, err := s.RevokeConsent(c.Request.Context(), id, c.Param("id"))
	if consent != nil {
		ev.USCC, ev.ConsentID, ev.Scopes, ev.Purpose = consent.USCC, consent.ID, consent.Scopes, consent.Purpose
	}
	s.respond(c, ev, http.StatusOK, consent, err)
}

// RevokeConsent ends a consent; the very next request under it is refused.
func (s *Server) RevokeConsent(ctx context.Context, id firmbridge.Identity, consentID string) (*firmbridge.Consent, error) {
	c, err := s.visibleConsent(ctx, id, consentID)
	if err != nil {
		return nil, err
	}
	switch c.EffectiveStatus(s.now()) {
	case firmbridge.ConsentActive, firmbridge.ConsentPending:
	default:
		return c, firmbridge.Errorf(firmbridge.ECONFLICT, "consent_not_active", "consent %s is %s and cannot be revoked", c.ID, c.EffectiveStatus(s.now()))
	}
	now := s.now().UTC()
	c.Status, c.UpdatedAt, c.UpdatedBy = firmbridge.ConsentRevoked, now.Truncate(time.Second), id.Subject
	c.Version = max(c.Version+1, firmbridge.VersionOf(now))
	if err := s.Consents.SaveConsent(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// visibleConsent returns a consent the caller is a party to; anyone else
// gets not-found, so consent ids reveal nothing.
func (s *Server) visibleConsent(ctx context.Context, id firmbridge.Identity, consentID string) (*firmbridge.Consent, error) {
	c, err := s.Consents.Consent(ctx, consentID)
	if err != nil {
		return nil, err
	}
	if (id.Role == firmbridge.RoleEnterprise && c.USCC == id.Org) || (id.Role == firmbridge.RoleBank && c.Grantee == id.Org) {
		return c, nil
	}
	return nil, firmbridge.Errorf(firmbridge.ENOTFOUND, "consent_not_found", "no consent with id %s", consentID)
}

func (s *Server) setEffective(list []*firmbridge.Consent) {
	now := s.now()
	for _, c := range list {
		c.Status = c.EffectiveStatus(now)
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
