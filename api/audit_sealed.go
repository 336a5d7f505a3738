package api

import (
	"context"

	"github.com/gin-gonic/gin"
)

// DigestChecker says whether the audit log is being sealed; AuditGuard is
// one.
type DigestChecker interface {
	Check(ctx context.Context) error
}

// requireSealedAudit refuses firm data while the audit log is not being
// sealed (503 audit_stalled): an access that could not be proven later is
// not made. The refusal is itself an access event, written to Kafka as
// usual; it is sealed when the sealer recovers.
func (s *Server) requireSealedAudit(c *gin.Context) {
	if s.AuditGuard == nil {
		c.Next()
		return
	}
	if err := s.AuditGuard.Check(c.Request.Context()); err != nil {
		s.logger().Warn("firm data refused: audit log not sealed", "err", err, "request_id", requestID(c))
		s.deny(c, err)
		return
	}
	c.Next()
}
