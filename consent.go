package firmbridge

import (
	"context"
	"slices"
	"time"
)

// Consent scopes: the sections of a profile a consent can open.
const (
	ScopeTax        = "tax"
	ScopePatent     = "patent"
	ScopeOperations = "operations"
)

// Scopes lists every scope in profile order.
var Scopes = []string{ScopeTax, ScopePatent, ScopeOperations}

// Purposes a bank may read for, with the longest consent each allows.
const (
	PurposeCreditAssessment = "credit_assessment"
	PurposeLoanMonitoring   = "loan_monitoring"
	PurposeRiskReview       = "risk_review"
)

// MaxConsentDuration is the longest a consent may run, per purpose. A credit
// assessment is a one-off decision; monitoring runs with the loan.
var MaxConsentDuration = map[string]time.Duration{
	PurposeCreditAssessment: 90 * 24 * time.Hour,
	PurposeLoanMonitoring:   365 * 24 * time.Hour,
	PurposeRiskReview:       180 * 24 * time.Hour,
}

// ValidPurpose reports whether p is a known purpose.
func ValidPurpose(p string) bool { _, ok := MaxConsentDuration[p]; return ok }

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool { return slices.Contains(Scopes, s) }

// Consent statuses.
const (
	ConsentPending  = "PENDING"
	ConsentActive   = "ACTIVE"
	ConsentRevoked  = "REVOKED"
	ConsentExpired  = "EXPIRED"
	ConsentRejected = "REJECTED"
)

// Consent is an enterprise's permission for one institution to read named
// scopes of its data, for one purpose, between ValidFrom and ExpiresAt,
// optionally only data from DataFrom onwards.
type Consent struct {
	ID        string     `json:"id"`
	USCC      string     `json:"uscc"`
	Grantee   string     `json:"grantee"`
	Scopes    []string   `json:"scopes"`
	Purpose   string     `json:"purpose"`
	Status    string     `json:"status"`
	ValidFrom time.Time  `json:"valid_from"`
	ExpiresAt time.Time  `json:"expires_at"`
	DataFrom  *time.Time `json:"data_from,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	UpdatedBy string     `json:"updated_by"`
	Version   uint64     `json:"-"`
}

// Validate checks a consent before it is granted.
func (c *Consent) Validate() error {
	switch {
	case c.USCC == "":
		return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "uscc", Message: "uscc is required"}
	case c.Grantee == "":
		return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "grantee", Message: "grantee institution is required"}
	case len(c.Scopes) == 0:
		return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "scopes", Message: "at least one scope is required"}
	case !ValidPurpose(c.Purpose):
		return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "purpose", Message: "purpose must be credit_assessment, loan_monitoring or risk_review"}
	case !c.ExpiresAt.After(c.ValidFrom):
		return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "expires_at", Message: "expires_at must be after valid_from"}
	case c.ExpiresAt.Sub(c.ValidFrom) > MaxConsentDuration[c.Purpose]:
		return &Error{Kind: EINVALID, Code: "consent_too_long", Field: "expires_at",
			Message: "a " + c.Purpose + " consent may run at most " + (MaxConsentDuration[c.Purpose] / (24 * time.Hour)).String() + " days"}
	}
	for _, s := range c.Scopes {
		if !ValidScope(s) {
			return &Error{Kind: EINVALID, Code: "invalid_consent", Field: "scopes", Message: "unknown scope " + s + "; scopes are tax, patent, operations"}
		}
	}
	return nil
}

// EffectiveStatus is the status at time at: an ACTIVE consent past its
// expiry is EXPIRED, one not yet valid is PENDING.
func (c *Consent) EffectiveStatus(at time.Time) string {
	if c.Status != ConsentActive {
		return c.Status
	}
	if !at.Before(c.ExpiresAt) {
		return ConsentExpired
	}
	if at.Before(c.ValidFrom) {
		return ConsentPending
	}
	return ConsentActive
}

// Covers reports whether the consent lets its grantee read scope for
// purpose at time at.
func (c *Consent) Covers(scope, purpose string, at time.Time) bool {
	return c.EffectiveStatus(at) == ConsentActive && c.Purpose == purpose && slices.Contains(c.Scopes, scope)
}

// ConsentStore keeps consents. Saving a consent with a higher Version
// replaces the older state.
type ConsentStore interface {
	SaveConsent(ctx context.Context, c *Consent) error
	Consent(ctx context.Context, id string) (*Consent, error)
	// ConsentsForFirm returns every consent of a firm, newest state of each.
	ConsentsForFirm(ctx context.Context, uscc string) ([]*Consent, error)
	// ConsentsForGrantee returns the consents granted to an institution,
	// optionally only for one firm (uscc != "").
	ConsentsForGrantee(ctx context.Context, grantee, uscc string) ([]*Consent, error)
}
