package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// profileMonths is how many VAT periods a profile shows.
const profileMonths = 24

func (s *Server) handleProfile(c *gin.Context) {
	ev := s.newEvent(c)
	ev.USCC, ev.Purpose = c.Param("uscc"), c.Query("purpose")
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	p, err := s.Profile(c.Request.Context(), id, c.Param("uscc"), c.Query("purpose"), ev)
	s.respond(c, ev, http.StatusOK, p, err)
}

// Profile decides whether the bank may read the firm for purpose and, if
// so, reads the sections its consent covers. It fills ev with what was
// decided; the caller records ev before anything is returned.
func (s *Server) Profile(ctx context.Context, id firmbridge.Identity, rawUSCC, purpose string, ev *firmbridge.AccessEvent) (*firmbridge.Profile, error) {
	uscc, err := connectors.NormalizeUSCC(rawUSCC)
	if err != nil {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_uscc", Field: "uscc", Message: err.Error()}
	}
	ev.USCC = uscc
	if purpose == "" {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "purpose_required", Field: "purpose", Message: "the query parameter purpose is required: credit_assessment, loan_monitoring or risk_review"}
	}
	if !firmbridge.ValidPurpose(purpose) {
		return nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_purpose", Field: "purpose", Message: "purpose must be credit_assessment, loan_monitoring or risk_review"}
	}
	if id.Role != firmbridge.RoleBank {
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "only banks read firm profiles")
	}
	consent, err := s.liveConsent(ctx, id.Org, uscc, purpose)
	if err != nil {
		return nil, err
	}
	ev.ConsentID, ev.Scopes = consent.ID, consent.Scopes

	identity, err := s.Profiles.FirmIdentity(ctx, uscc)
	if err != nil {
		return nil, err
	}
	p := &firmbridge.Profile{USCC: uscc, Purpose: purpose, ConsentID: consent.ID, Identity: identity, Sections: []string{"identity"}}
	var since time.Time
	if consent.DataFrom != nil {
		since = *consent.DataFrom
	}
	for _, scope := range firmbridge.Scopes {
		if !slices.Contains(consent.Scopes, scope) {
			continue
		}
		switch scope {
		case firmbridge.ScopeTax:
			if p.Tax, err = s.Profiles.TaxSection(ctx, uscc, since, profileMonths); err != nil {
				return nil, err
			}
			p.Sections = append(p.Sections, scope)
		default:
			p.Withheld = append(p.Withheld, firmbridge.WithheldScope{Scope: scope, Reason: "section_not_served_yet"})
		}
	}
	return p, nil
}

// liveConsent returns the newest consent of uscc to grantee that is active
// now for purpose. Without one, the error says why, so that the bank knows
// whether to ask for a new consent or for another purpose.
func (s *Server) liveConsent(ctx context.Context, grantee, uscc, purpose string) (*firmbridge.Consent, error) {
	consents, err := s.Consents.ConsentsForGrantee(ctx, grantee, uscc)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var newestForPurpose *firmbridge.Consent
	otherPurpose := false
	for _, c := range consents { // newest first
		if c.Purpose != purpose {
			otherPurpose = otherPurpose || c.EffectiveStatus(now) == firmbridge.ConsentActive
			continue
		}
		if c.EffectiveStatus(now) == firmbridge.ConsentActive {
			return c, nil
		}
		if newestForPurpose == nil {
			newestForPurpose = c
		}
	}
	switch {
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
