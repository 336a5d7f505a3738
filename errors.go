package firmbridge

import (
	"errors"
	"fmt"
)

// Error kinds. Each maps to exactly one HTTP status in the API; the same kinds
// are used by ingest and the command line.
const (
	EINVALID      = "invalid"      // the caller sent something malformed
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	EUNAUTHORIZED = "unauthorized" // no valid identity
	EFORBIDDEN    = "forbidden"    // identity known, action not allowed
	ECONFLICT     = "conflict"     // the state does not allow the action
	ETOOLARGE     = "too_large"    // the request is bigger than allowed
	EMETHOD       = "method"       // the resource exists, not with this method
	ELIMITED      = "limited"      // too many requests; retry after a while
	EUNSUPPORTED  = "unsupported"  // the request's media type is not accepted
	EUNAVAILABLE  = "unavailable"  // a dependency is down; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is the domain error. Kind selects the class of failure, Code is a
// stable machine-readable reason (for example "consent_required") that
// clients may branch on, Message is for humans and never contains internals.
type Error struct {
	Kind    string
	Code    string
	Message string
	Field   string // the offending input field, when there is one
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns a domain error of the given kind and code.
func Errorf(kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of a domain error, or EINTERNAL for any other error.
func ErrorKind(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return EINTERNAL
}

// ErrorCode returns the code of a domain error, or "internal" for any other error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of a domain error, or a generic text
// for any other error, so internal details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
