// Package api is firmbridge's REST API (gin): authentication, authorization,
// consents, firm profiles and audit queries. Handlers are thin: they bind
// the request, call one service method, and write the result or a
// problem+json error. Decisions live in the services.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// Server holds the API's dependencies, set once in cmd/firmbridge.
type Server struct {
	Tokens   *Tokens
	Consents firmbridge.ConsentStore
	Profiles firmbridge.ProfileReader
	Audit    firmbridge.AuditLog
	// ConsentEvents publishes every consent change to consent.events.v1
	// before the change is answered (see receipts.go); nil publishes
	// nothing, for tools and tests.
	ConsentEvents firmbridge.ConsentEventPublisher
	// Receipts stores consent receipts; nil means Consents, which must
	// then implement firmbridge.ConsentLifecycleStore.
	Receipts firmbridge.ConsentLifecycleStore
	// ReceiptGrace is how long a receipt may stay unpublished before the
	// consent sweeper settles it; zero means DefaultReceiptGrace.
	ReceiptGrace time.Duration
	consentLocks consentLocks
	// Raw publishes the records providers push (POST /v1/ingest/{source})
	// to the raw topics; Connectors says which sources and versions exist.
	Raw        firmbridge.RawPublisher
	Connectors *connectors.Registry
	// Limits of one push; zero means DefaultMaxIngestBytes and
	// DefaultMaxIngestRecords.
	MaxIngestBytes   int64
	MaxIngestRecords int
	// Ready reports whether the dependencies answer; nil means always ready.
	Ready func(ctx context.Context) error
	// Clients registers OAuth2 clients and authenticates them at
	// POST /v1/auth/token; nil turns client credentials off.
	Clients *Clients
	// TokenTTL is the lifetime of client-credentials tokens; zero means
	// DefaultClientTokenTTL.
	TokenTTL time.Duration
	// RateLimits throttles each institution after authentication; nil
	// means no limit.
	RateLimits *RateLimiter
	// MaxBodyBytes bounds request bodies under /v1, except pushes, which
	// have their own limit; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// TrustedProxies are the addresses (or CIDRs) of proxies whose
	// X-Forwarded-For names the client; none by default, so the client
	// address in an access event is the TCP peer and cannot be forged by
	// a header.
	TrustedProxies []string
	// AuditGuard, when set, stops firm data while the audit log's signed
	// digests are stale (fail closed, like X-Road).
	AuditGuard DigestChecker
	// Metrics and the registry /metrics serves; both optional.
	Metrics  *Metrics
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Now      func() time.Time
	// AuditQueries reads the sealed audit log for /v1/audit/* and
	// /v1/access-log (nil: 503); AuditChains and AuditKeys verify its
	// chains; AlertRules holds the alert thresholds (zero: defaults);
	// AuthFailures bounds the events of failed authentications. See
	// audit_routes.go, access_log.go, audit_authfail.go and docs/AUDIT.md.
	AuditQueries AuditReader
	AuditChains  firmbridge.AuditChainReader
	AuditKeys    firmbridge.AuditKeys
	AlertRules   AlertRules
	AuthFailures AuthFailureLimiter
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Handler builds the router: public routes first, then every route that
// needs an identity, grouped behind authentication.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	if err := r.SetTrustedProxies(s.TrustedProxies); err != nil {
		// A bad list trusts no one: forged addresses are worse than none.
		s.logger().Error("trusted proxies ignored", "err", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(gin.Recovery(), s.withRequestID, s.accessLog)
	if s.Metrics != nil {
		r.Use(s.Metrics.observe)
	}
	if s.Registry != nil {
		r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})))
	}
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		writeError(c, s.logger(), firmbridge.Errorf(firmbridge.ENOTFOUND, "route_not_found", "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		allowed := allowedMethods(r.Routes(), c.Request.URL.Path)
		c.Header("Allow", strings.Join(allowed, ", "))
		writeError(c, s.logger(), firmbridge.Errorf(firmbridge.EMETHOD, "method_not_allowed", "method %s is not allowed here (allowed: %s)",
			c.Request.Method, strings.Join(allowed, ", ")))
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/openapi.json", s.openAPIHandler())
	r.GET("/docs", s.docsHandler())
	r.GET("/readyz", s.handleReady)
	r.GET("/.well-known/jwks.json", func(c *gin.Context) { c.JSON(http.StatusOK, s.Tokens.JWKS()) })

	// The token endpoint authenticates clients itself, so it sits outside
	// the bearer-token group.
	r.POST("/v1/auth/token", s.handleToken)

	v1 := r.Group("/v1", s.authenticate, s.rateLimit, s.limitBody)
	v1.POST("/admin/clients", s.allow(firmbridge.RoleAdmin), s.handleCreateClient)
	v1.GET("/admin/clients", s.allow(firmbridge.RoleAdmin), s.handleListClients)
	v1.POST("/admin/clients/:id/disable", s.allow(firmbridge.RoleAdmin), s.handleDisableClient)
	v1.GET("/firms/:uscc/profile", s.allow(firmbridge.RoleBank), s.requireSealedAudit, s.handleProfile)
	v1.GET("/firms/:uscc/tax", s.allow(firmbridge.RoleBank), s.requireSealedAudit, s.handleTaxRecords)
	v1.GET("/firms/:uscc/patents", s.allow(firmbridge.RoleBank), s.requireSealedAudit, s.handlePatentRecords)
	v1.GET("/firms/:uscc/operations", s.allow(firmbridge.RoleBank), s.requireSealedAudit, s.handleOperationsRecords)
	v1.POST("/profiles/batch", s.allow(firmbridge.RoleBank), s.requireSealedAudit, s.handleProfileBatch)
	v1.POST("/consents", s.allow(firmbridge.RoleEnterprise), s.handleGrantConsent)
	v1.GET("/consents", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleListConsents)
	v1.GET("/consents/:id", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleGetConsent)
	v1.POST("/consents/:id/revoke", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleRevokeConsent)
	v1.GET("/consents/:id/receipts", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleListReceipts)
	v1.POST("/consent-requests", s.allow(firmbridge.RoleBank), s.handleCreateConsentRequest)
	v1.GET("/consent-requests", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleListConsentRequests)
	v1.GET("/consent-requests/:id", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleGetConsentRequest)
	v1.POST("/consent-requests/:id/approve", s.allow(firmbridge.RoleEnterprise), s.handleApproveConsentRequest)
	v1.POST("/consent-requests/:id/reject", s.allow(firmbridge.RoleEnterprise), s.handleRejectConsentRequest)
	v1.POST("/ingest/:source", s.allow(firmbridge.RoleProvider), s.handleIngest)
	v1.GET("/audit/events", s.allow(firmbridge.RoleRegulator), s.handleAuditEvents)
	v1.GET("/audit/stats", s.allow(firmbridge.RoleRegulator), s.handleAuditStats)
	v1.GET("/audit/export", s.allow(firmbridge.RoleRegulator), s.handleAuditExport)
	v1.GET("/audit/alerts", s.allow(firmbridge.RoleRegulator), s.handleAuditAlerts)
	v1.GET("/audit/verify", s.allow(firmbridge.RoleRegulator), s.handleAuditVerify)
	v1.GET("/access-log", s.allow(firmbridge.RoleEnterprise, firmbridge.RoleBank), s.handleAccessLog)
	return r
}

// allowedMethods lists the methods some route serves path with, for the
// Allow header a 405 must carry (RFC 9110 §15.5.6).
func allowedMethods(routes gin.RoutesInfo, path string) []string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var out []string
	for _, r := range routes {
		pattern := strings.Split(strings.Trim(r.Path, "/"), "/")
		if len(pattern) != len(segs) || slices.Contains(out, r.Method) {
			continue
		}
		match := true
		for i, p := range pattern {
			match = match && (strings.HasPrefix(p, ":") || p == segs[i])
		}
		if match {
			out = append(out, r.Method)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) handleReady(c *gin.Context) {
	if s.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.logger().Warn("not ready", "err", err)
			writeError(c, s.logger(), firmbridge.Errorf(firmbridge.EUNAVAILABLE, "not_ready", "a dependency does not answer"))
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

const requestIDKey = "firmbridge.request_id"

func (s *Server) withRequestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if id == "" || len(id) > 128 {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	s.logger().Info("http", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"took", time.Since(start), "request_id", requestID(c))
}

// authenticate requires a valid bearer token and puts its identity in the
// request context. A refusal is an access event, within the limits of
// AuthFailures (audit_authfail.go).
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	raw, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="firmbridge"`)
		err := firmbridge.Errorf(firmbridge.EUNAUTHORIZED, "token_missing", "an Authorization: Bearer token is required")
		s.recordAuthFailure(c, err)
		writeError(c, s.logger(), err)
		return
	}
	id, err := s.Tokens.Parse(strings.TrimSpace(raw))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="firmbridge", error="invalid_token"`)
		s.recordAuthFailure(c, err)
		writeError(c, s.logger(), err)
		return
	}
	c.Request = c.Request.WithContext(firmbridge.WithIdentity(c.Request.Context(), id))
	c.Next()
}

// allow is the role matrix of a route: only the listed roles pass.
func (s *Server) allow(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, _ := firmbridge.IdentityFrom(c.Request.Context())
		for _, r := range roles {
			if id.Role == r {
				c.Next()
				return
			}
		}
		// Every route behind allow touches firm data or consents, so a
		// refusal is an access event too.
		s.deny(c, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "role %q may not use this endpoint", id.Role))
	}
}
