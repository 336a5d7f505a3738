package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// newEvent starts the access event of a request.
func (s *Server) newEvent(c *gin.Context) *firmbridge.AccessEvent {
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return &firmbridge.AccessEvent{
		EventID:    hex.EncodeToString(b),
		RequestID:  requestID(c),
		OccurredAt: s.now().UTC(),
		Subject:    id.Subject,
		Role:       id.Role,
		Org:        id.Org,
		ClientAddr: c.ClientIP(),
		Method:     c.Request.Method,
		Path:       c.Request.URL.Path,
	}
}

// respond records the request's access event and only then writes the
// response: data never leaves without its event durably in the audit log.
// When the audit log cannot be written the request fails closed with 503.
func (s *Server) respond(c *gin.Context, ev *firmbridge.AccessEvent, status int, body any, err error) {
	if err != nil {
		ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionDeny, firmbridge.ErrorCode(err), StatusOf(err)
	} else {
		ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionAllow, "", status
	}
	if s.Metrics != nil && ev.Decision == firmbridge.DecisionDeny {
		s.Metrics.Denials.WithLabelValues(ev.Reason).Inc()
	}
	if auditErr := s.Audit.Record(c.Request.Context(), ev); auditErr != nil {
		s.logger().Error("audit log write failed; failing closed", "request_id", ev.RequestID, "err", auditErr)
		writeError(c, s.logger(), firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_unavailable",
			"the access could not be recorded, so no data is served; retry later"))
		return
	}
	if err != nil {
		writeError(c, s.logger(), err)
		return
	}
	c.JSON(status, body)
}

// deny records and answers a request refused before reaching its handler.
func (s *Server) deny(c *gin.Context, err error) {
	ev := s.newEvent(c)
	ev.USCC = c.Param("uscc")
	ev.Purpose = c.Query("purpose")
	s.respond(c, ev, http.StatusForbidden, nil, err)
	c.Abort()
}
