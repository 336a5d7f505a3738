package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/schema"
)

// GET /v1/access-log: the parties' view of the sealed audit log. An
// enterprise sees every access that named its firm, by whoever made it
// (banks, the firm's own users), except the regulators' supervisory
// queries; a bank sees every request it made itself. Regulators read the
// whole log at /v1/audit/events. See docs/AUDIT.md.

// AccessLogEntry is one access as a party to it sees it.
type AccessLogEntry struct {
	EventID     string    `json:"event_id"`
	OccurredAt  time.Time `json:"occurred_at"`
	Institution string    `json:"institution"`
	Role        string    `json:"role"`
	// Subject is the user or client that made the request; only an
	// institution sees its own, a firm sees which institution.
	Subject   string   `json:"subject,omitempty"`
	USCC      string   `json:"uscc"`
	Scopes    []string `json:"scopes"`
	Purpose   string   `json:"purpose"`
	ConsentID string   `json:"consent_id"`
	Decision  string   `json:"decision"`
	Reason    string   `json:"reason"`
	Status    int      `json:"status"`
	Method    string   `json:"method"`
	Path      string   `json:"path"`
}

// AccessLogPage is a page of GET /v1/access-log, newest first.
type AccessLogPage struct {
	// USCC is the firm whose log this is (enterprise), Institution the
	// institution's (bank).
	USCC        string           `json:"uscc,omitempty"`
	Institution string           `json:"institution,omitempty"`
	Limit       int              `json:"limit"`
	Items       []AccessLogEntry `json:"items"`
	// NextCursor fetches the next page; null on the last page.
	NextCursor *string `json:"next_cursor"`
}

func (s *Server) handleAccessLog(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	page, err := s.accessLogPage(c, id, ev)
	s.respond(c, ev, http.StatusOK, page, err)
}

func (s *Server) accessLogPage(c *gin.Context, id firmbridge.Identity, ev *firmbridge.AccessEvent) (*AccessLogPage, error) {
	params := c.Request.URL.Query()
	if err := onlyParams(params, "from", "to", "decision", "limit", "cursor"); err != nil {
		return nil, err
	}
	var f schema.AuditFilter
	page := &AccessLogPage{Items: []AccessLogEntry{}}
	switch id.Role {
	case firmbridge.RoleEnterprise:
		uscc, err := enterpriseUSCC(id)
		if err != nil {
			return nil, err
		}
		ev.USCC, f.USCC, page.USCC = uscc, uscc, uscc
		// Supervision is not disclosed to the supervised: a regulator's
		// queries stay in the regulator's view of the log.
		f.ExcludeRoles = []string{firmbridge.RoleRegulator}
	case firmbridge.RoleBank:
		f.Org, page.Institution = id.Org, id.Org
	default:
		// The route admits only these two; this guards a change there.
		return nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "role %q has no access log; regulators use /v1/audit/events", id.Role)
	}
	var err error
	if f.From, f.To, err = parseAuditRange(params); err != nil {
		return nil, err
	}
	if f.Decision, err = parseDecision(params); err != nil {
		return nil, err
	}
	if page.Limit, err = parseAuditLimit(params); err != nil {
		return nil, err
	}
	fp := auditFingerprint("access-log", id.Role+"|"+id.Org, f)
	after, err := decodeAuditCursor(params, "access-log", fp)
	if err != nil {
		return nil, err
	}
	reader, err := s.auditReader()
	if err != nil {
		return nil, err
	}
	rows, next, err := reader.AuditEvents(c.Request.Context(), f, after, page.Limit)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		e := AccessLogEntry{EventID: r.EventID, OccurredAt: r.OccurredAt, Institution: r.Org, Role: r.Role, USCC: r.USCC, Scopes: r.Scopes,
			Purpose: r.Purpose, ConsentID: r.ConsentID, Decision: r.Decision, Reason: r.Reason, Status: r.Status, Method: r.Method, Path: r.Path}
		if id.Role == firmbridge.RoleBank || r.Org == id.Org {
			e.Subject = r.Subject
		}
		if e.Scopes == nil {
			e.Scopes = []string{}
		}
		page.Items = append(page.Items, e)
	}
	if next != nil {
		cur := encodeAuditCursor("access-log", fp, *next)
		page.NextCursor = &cur
	}
	return page, nil
}
