package firmbridge

import (
	"context"
	"slices"
)

// Roles a token can carry.
const (
	RoleBank       = "bank"
	RoleEnterprise = "enterprise"
	RoleRegulator  = "regulator"
	RoleProvider   = "provider"
	RoleAdmin      = "admin"
)

// Roles lists every role.
var Roles = []string{RoleBank, RoleEnterprise, RoleRegulator, RoleProvider, RoleAdmin}

// ValidRole reports whether role is one of Roles.
func ValidRole(role string) bool {
	for _, r := range Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Identity is the authenticated caller of a request. Org is an institution
// id for banks, regulators and providers, and the firm's USCC for an enterprise.
//
// Scopes are the data scopes (ScopeTax, ScopePatent, ScopeOperations) the
// token was granted, which narrow what consent allows: a client registered
// for tax reads only tax, whatever a firm consented to. Nil means the token
// names no scopes (a user's token, or a client registered without any), and
// consent and role alone bound what it reaches.
type Identity struct {
	Subject string
	Role    string
	Org     string
	TokenID string
	Scopes  []string
}

// Allows reports whether the token lets its bearer reach data of scope.
func (id Identity) Allows(scope string) bool {
	return id.Scopes == nil || slices.Contains(id.Scopes, scope)
}

type identityKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity in ctx, if any.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
