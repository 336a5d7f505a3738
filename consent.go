package firmbridge

import (
	"context"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
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
//
// A consent a bank asked for (a consent request) starts PENDING with
// RequestedBy set and becomes ACTIVE or REJECTED when the firm answers.
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
	// RequestedBy is the bank user who asked for the consent; empty for a
	// consent the firm granted on its own.
	RequestedBy string `json:"requested_by,omitempty"`
	// Note is the bank's message with its request, at most MaxConsentText
	// characters.
	Note string `json:"note,omitempty"`
	// Reason says why the firm rejected or revoked it, when it said.
	Reason  string `json:"reason,omitempty"`
	Version uint64 `json:"-"`
}

// MaxConsentText bounds a request's note and a rejection's or revocation's
// reason, in characters.
const MaxConsentText = 500

// MaxConsentLead is how far ahead a consent may start: further out, the
// firm cannot judge today what it agrees to.
const MaxConsentLead = 365 * 24 * time.Hour

// Validate checks a consent's terms before it is granted or requested.
// Each failure names the field and has a stable code: invalid_uscc,
// invalid_grantee, invalid_scope, invalid_purpose, invalid_valid_from,
// invalid_expiry, consent_too_long, invalid_data_from, invalid_note,
// invalid_reason.
func (c *Consent) Validate() error {
	invalid := func(code, field, msg string) error {
		return &Error{Kind: EINVALID, Code: code, Field: field, Message: msg}
	}
	switch {
	case c.USCC == "":
		return invalid("invalid_uscc", "uscc", "uscc is required")
	case c.Grantee == "":
		return invalid("invalid_grantee", "grantee", "grantee institution is required")
	case !ValidInstitution(c.Grantee):
		return invalid("invalid_grantee", "grantee", "grantee must be an institution id: 1 to 64 letters, digits, '-', '_' or '.'")
	case len(c.Scopes) == 0:
		return invalid("invalid_scope", "scopes", "at least one scope is required: tax, patent, operations")
	}
	for i, s := range c.Scopes {
		if !ValidScope(s) {
			return invalid("invalid_scope", "scopes", "unknown scope "+strconv.Quote(s)+"; scopes are tax, patent, operations")
		}
		if slices.Contains(c.Scopes[:i], s) {
			return invalid("invalid_scope", "scopes", "scope "+s+" is listed twice")
		}
	}
	maxLen := MaxConsentDuration[c.Purpose]
	switch {
	case c.Purpose == "":
		return invalid("invalid_purpose", "purpose", "purpose is required: credit_assessment, loan_monitoring or risk_review")
	case !ValidPurpose(c.Purpose):
		return invalid("invalid_purpose", "purpose", "purpose must be credit_assessment, loan_monitoring or risk_review")
	case c.ValidFrom.IsZero():
		return invalid("invalid_valid_from", "valid_from", "valid_from is required")
	case c.ExpiresAt.IsZero():
		return invalid("invalid_expiry", "expires_at", "expires_at is required")
	case !c.ExpiresAt.After(c.ValidFrom):
		return invalid("invalid_expiry", "expires_at", "expires_at must be after valid_from")
	case c.ExpiresAt.Sub(c.ValidFrom) > maxLen:
		return invalid("consent_too_long", "expires_at",
			"a "+c.Purpose+" consent may run at most "+strconv.Itoa(int(maxLen/(24*time.Hour)))+" days")
	case c.DataFrom != nil && c.DataFrom.Before(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)):
		return invalid("invalid_data_from", "data_from", "data_from must be 1970-01-01 or later")
	case c.DataFrom != nil && !c.DataFrom.Before(c.ExpiresAt):
		return invalid("invalid_data_from", "data_from", "data_from must be before expires_at")
	case utf8.RuneCountInString(c.Note) > MaxConsentText:
		return invalid("invalid_note", "note", "note may have at most "+strconv.Itoa(MaxConsentText)+" characters")
	case utf8.RuneCountInString(c.Reason) > MaxConsentText:
		return invalid("invalid_reason", "reason", "reason may have at most "+strconv.Itoa(MaxConsentText)+" characters")
	}
	return nil
}

// ValidInstitution reports whether id looks like an institution id:
// 1 to 64 ASCII letters, digits, '-', '_' or '.'.
func ValidInstitution(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// ReasonRequestLapsed is the reason of a consent request that expired
// before the firm answered it.
const ReasonRequestLapsed = "the request lapsed before the firm answered it"

// Granted reports whether the firm ever granted the consent, on its own or
// by approving a request. A request rejected, pending, or lapsed
// unanswered never opened anything, so reading under it is
// consent_required, not consent_expired.
func (c *Consent) Granted() bool {
	switch c.Status {
	case ConsentPending, ConsentRejected:
		return false
	case ConsentExpired:
		return c.RequestedBy == "" || c.Reason != ReasonRequestLapsed
	}
	return true
}

// EffectiveStatus is the status at time at: an ACTIVE consent past its
// expiry is EXPIRED, one not yet valid is PENDING; a request (PENDING)
// left unanswered past its expiry is EXPIRED too.
func (c *Consent) EffectiveStatus(at time.Time) string {
	switch c.Status {
	case ConsentPending:
		if !at.Before(c.ExpiresAt) {
			return ConsentExpired
		}
		return ConsentPending
	case ConsentActive:
	default:
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

// Consent lifecycle events: what happened to a consent. Each yields a
// receipt and one message on consent.events.v1.
const (
	ConsentEventRequested = "requested" // a bank asked (PENDING)
	ConsentEventGranted   = "granted"   // the firm granted on its own (ACTIVE)
	ConsentEventApproved  = "approved"  // the firm approved a request (ACTIVE)
	ConsentEventRejected  = "rejected"  // the firm rejected a request (REJECTED)
	ConsentEventRevoked   = "revoked"   // the firm revoked it (REVOKED)
	ConsentEventExpired   = "expired"   // it ran out (EXPIRED)
)

// ConsentEventTypes lists the lifecycle events.
var ConsentEventTypes = []string{ConsentEventRequested, ConsentEventGranted, ConsentEventApproved,
	ConsentEventRejected, ConsentEventRevoked, ConsentEventExpired}

// Receipt states: a receipt is written unpublished before its consent
// change is stored, published once its event is on consent.events.v1, and
// void when its consent change never got stored.
const (
	ReceiptUnpublished = "unpublished"
	ReceiptPublished   = "published"
	ReceiptVoid        = "void"
)

// ConsentReceipt is the stored record of one signed consent receipt. JWS is
// the receipt itself (a compact JWS both parties can verify with the JWKS);
// the other fields repeat what it says, for querying.
type ConsentReceipt struct {
	ID        string    `json:"id"` // <consent id>:<event>, the same whoever issues it
	ConsentID string    `json:"consent_id"`
	USCC      string    `json:"uscc"`
	Grantee   string    `json:"grantee"`
	Event     string    `json:"event"`
	Seq       int       `json:"seq"` // 1 for a consent's first receipt
	IssuedAt  time.Time `json:"issued_at"`
	JWS       string    `json:"receipt"`
	Hash      string    `json:"hash"`           // ReceiptHash of JWS
	Prev      string    `json:"prev,omitempty"` // Hash of the receipt before, "" for the first
	// ConsentVersion is the Version of the consent state the receipt
	// records.
	ConsentVersion uint64    `json:"-"`
	State          string    `json:"-"`
	WrittenAt      time.Time `json:"-"`
	Version        uint64    `json:"-"` // the newest version of a receipt id wins
}

// ConsentEvent is one message on consent.events.v1: the consent's state
// after a change, and the receipt of the change. EventID is the receipt id,
// so a consumer can drop an event delivered twice; ConsentVersion orders
// the states of one consent.
type ConsentEvent struct {
	EventID        string     `json:"event_id"`
	Type           string     `json:"type"`
	ConsentID      string     `json:"consent_id"`
	USCC           string     `json:"uscc"`
	Grantee        string     `json:"grantee"`
	Status         string     `json:"status"`
	Scopes         []string   `json:"scopes"`
	Purpose        string     `json:"purpose"`
	ValidFrom      time.Time  `json:"valid_from"`
	ExpiresAt      time.Time  `json:"expires_at"`
	DataFrom       *time.Time `json:"data_from,omitempty"`
	ConsentVersion uint64     `json:"consent_version"`
	Time           time.Time  `json:"time"`
	Receipt        string     `json:"receipt"`
}

// ConsentEventPublisher writes consent events to consent.events.v1, keyed
// by the firm's USCC. It returns nil only once every in-sync replica has
// the event.
type ConsentEventPublisher interface {
	PublishConsentEvent(ctx context.Context, e *ConsentEvent) error
}

// ConsentLifecycleStore keeps consent receipts and finds the work of the
// consent sweeper.
type ConsentLifecycleStore interface {
	// SaveReceipt inserts a receipt row; a row with a higher Version
	// replaces an older one of the same receipt id.
	SaveReceipt(ctx context.Context, r *ConsentReceipt) error
	// ReceiptsOf returns every receipt of a consent, void ones included,
	// newest row of each, ordered by Seq.
	ReceiptsOf(ctx context.Context, consentID string) ([]*ConsentReceipt, error)
	// UnpublishedReceipts returns up to limit receipts still unpublished
	// that were written at or before writtenBefore, oldest first.
	UnpublishedReceipts(ctx context.Context, writtenBefore time.Time, limit int) ([]*ConsentReceipt, error)
	// ConsentsPastExpiry returns up to limit consents stored ACTIVE or
	// PENDING whose expiry is at or before at, earliest expiry first.
	ConsentsPastExpiry(ctx context.Context, at time.Time, limit int) ([]*Consent, error)
}
