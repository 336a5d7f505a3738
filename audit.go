package firmbridge

import (
	"context"
	"time"
)

// Access decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// AccessEvent records one request that touched firm data or consents,
// allowed or denied. It is written durably before any data leaves.
type AccessEvent struct {
	EventID    string    `json:"event_id"`
	RequestID  string    `json:"request_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Subject    string    `json:"subject"`
	Role       string    `json:"role"`
	Org        string    `json:"org"`
	USCC       string    `json:"uscc"`
	Scopes     []string  `json:"scopes"`
	Purpose    string    `json:"purpose"`
	ConsentID  string    `json:"consent_id"`
	Decision   string    `json:"decision"`
	Reason     string    `json:"reason"`
	Status     int       `json:"status"`
	ClientAddr string    `json:"client_addr"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
}

// AccessEventColumns are the access_events columns in AccessEvent.Values order.
var AccessEventColumns = []string{"event_id", "request_id", "occurred_at", "subject", "role", "org", "uscc",
	"scopes", "purpose", "consent_id", "decision", "reason", "status", "client_addr", "method", "path"}

// Table implements Row.
func (e *AccessEvent) Table() string { return "access_events" }

// Columns implements Row.
func (e *AccessEvent) Columns() []string { return AccessEventColumns }

// Values implements Row.
func (e *AccessEvent) Values() []any {
	scopes := e.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return []any{e.EventID, e.RequestID, e.OccurredAt.UTC(), e.Subject, e.Role, e.Org, e.USCC,
		scopes, e.Purpose, e.ConsentID, e.Decision, e.Reason, uint16(e.Status), e.ClientAddr, e.Method, e.Path}
}

// AuditLog durably records access events. Record returns only after the
// event is safely stored (acks from all in-sync replicas); when it fails the
// caller must fail closed.
type AuditLog interface {
	Record(ctx context.Context, e *AccessEvent) error
}
