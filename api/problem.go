package api

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// statusOf is the one table from error kinds to HTTP statuses.
var statusOf = map[string]int{
	firmbridge.ELIMITED:      http.StatusTooManyRequests,
	firmbridge.EMETHOD:       http.StatusMethodNotAllowed,
	firmbridge.EINVALID:      http.StatusBadRequest,
	firmbridge.ENOTFOUND:     http.StatusNotFound,
	firmbridge.EUNAUTHORIZED: http.StatusUnauthorized,
	firmbridge.EFORBIDDEN:    http.StatusForbidden,
	firmbridge.ECONFLICT:     http.StatusConflict,
	firmbridge.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	firmbridge.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	firmbridge.EUNAVAILABLE:  http.StatusServiceUnavailable,
	firmbridge.EINTERNAL:     http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem detail, with firmbridge's stable code.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
}

// StatusOf returns the HTTP status for an error.
func StatusOf(err error) int {
	if s, ok := statusOf[firmbridge.ErrorKind(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// writeError writes any error as problem+json. Internal errors are logged
// and reach the client only as "internal error".
func writeError(c *gin.Context, logger *slog.Logger, err error) {
	status := StatusOf(err)
	code := firmbridge.ErrorCode(err)
	if status == http.StatusInternalServerError {
		logger.Error("request failed", "request_id", requestID(c), "path", c.Request.URL.Path, "err", err)
	}
	p := Problem{
		Type:      "urn:firmbridge:problem:" + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    firmbridge.ErrorMessage(err),
		Code:      code,
		Instance:  c.Request.URL.Path,
		RequestID: requestID(c),
	}
	if e, ok := err.(*firmbridge.Error); ok {
		p.Field = e.Field
	}
	if code == codeInsufficientScope {
		// RFC 6750 §3: the token is valid but lacks a scope.
		c.Header("WWW-Authenticate", `Bearer realm="firmbridge", error="insufficient_scope"`)
	}
	c.Header("Content-Type", "application/problem+json")
	// gin keeps a Content-Type that is already set.
	c.AbortWithStatusJSON(status, p)
}
