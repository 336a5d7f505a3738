package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/firmbridge/firmbridge"
)

// Claims are firmbridge's token claims: the registered ones plus role and
// org; an enterprise token repeats its org as uscc, and a client-credentials
// token names its client and the scopes it was granted.
type Claims struct {
	Role     string `json:"role"`
	Org      string `json:"org"`
	USCC     string `json:"uscc,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Scope    string `json:"scope,omitempty"`
	jwt.RegisteredClaims
}

// MaxLeeway bounds the clock skew a verifier tolerates, whatever Leeway
// says, so a configuration slip cannot revive expired tokens for long.
const MaxLeeway = 5 * time.Minute

// MaxTokenTTL is the longest lifetime Issue grants and Parse accepts.
const MaxTokenTTL = 24 * time.Hour

// Grant is what a token says about its bearer.
type Grant struct {
	Subject  string
	Role     string
	Org      string
	ClientID string // set for client-credentials tokens
	Scope    string // space-delimited, as granted
	TTL      time.Duration
}

// Tokens issues and verifies access tokens. Only EdDSA is accepted; keys
// are found by kid, so several keys can be live at once during rotation.
type Tokens struct {
	Issuer   string
	Audience string
	Signing  *SigningKey   // signs new tokens
	Verify   []*SigningKey // accepted for verification; Signing is always accepted
	Leeway   time.Duration // clock skew tolerated on exp, nbf and iat; at most MaxLeeway
	Now      func() time.Time
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Tokens) leeway() time.Duration {
	return min(max(t.Leeway, 0), MaxLeeway)
}

// Issue signs a token for subject with role and org, valid for ttl.
func (t *Tokens) Issue(subject, role, org string, ttl time.Duration) (string, error) {
	return t.IssueGrant(Grant{Subject: subject, Role: role, Org: org, TTL: ttl})
}

// IssueGrant signs a token carrying g.
func (t *Tokens) IssueGrant(g Grant) (string, error) {
	if !firmbridge.ValidRole(g.Role) {
		return "", firmbridge.Errorf(firmbridge.EINVALID, "invalid_role", "role %q is not one of bank, enterprise, regulator, provider, admin", g.Role)
	}
	if g.Org == "" {
		return "", firmbridge.Errorf(firmbridge.EINVALID, "invalid_org", "org is required")
	}
	if g.TTL < time.Second || g.TTL > MaxTokenTTL {
		return "", firmbridge.Errorf(firmbridge.EINVALID, "invalid_ttl", "ttl must be between 1s and 24h")
	}
	if t.Signing == nil {
		return "", errors.New("tokens: no signing key configured")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	now := t.now().UTC().Truncate(time.Second)
	claims := Claims{Role: g.Role, Org: g.Org, ClientID: g.ClientID, Scope: g.Scope, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: t.Issuer, Subject: g.Subject, Audience: jwt.ClaimStrings{t.Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(g.TTL)),
		ID: hex.EncodeToString(jti),
	}}
	if g.Role == firmbridge.RoleEnterprise {
		claims.USCC = g.Org
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = t.Signing.ID
	s, err := tok.SignedString(t.Signing.Private)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Parse verifies a token and returns the identity it carries. Every failure
// is an EUNAUTHORIZED error whose code says what was wrong.
func (t *Tokens) Parse(raw string) (firmbridge.Identity, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(raw, &claims, t.keyFor,
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(t.Issuer), jwt.WithAudience(t.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(t.leeway()),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		code := "token_invalid"
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			code = "token_expired"
		case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenInvalidIssuer):
			code = "token_wrong_audience_or_issuer"
		case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
			code = "token_signature_invalid"
		}
		return firmbridge.Identity{}, &firmbridge.Error{Kind: firmbridge.EUNAUTHORIZED, Code: code, Message: "the bearer token was not accepted: " + err.Error()}
	}
	if claims.Subject == "" || claims.IssuedAt == nil || !firmbridge.ValidRole(claims.Role) || claims.Org == "" {
		return firmbridge.Identity{}, firmbridge.Errorf(firmbridge.EUNAUTHORIZED, "token_claims_missing", "the token must carry sub, iat, a known role and org")
	}
	// A token living longer than any we issue was not issued by us.
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxTokenTTL {
		return firmbridge.Identity{}, firmbridge.Errorf(firmbridge.EUNAUTHORIZED, "token_invalid", "the token's lifetime exceeds %s", MaxTokenTTL)
	}
	if claims.USCC != "" && (claims.Role != firmbridge.RoleEnterprise || claims.USCC != claims.Org) {
		return firmbridge.Identity{}, firmbridge.Errorf(firmbridge.EUNAUTHORIZED, "token_invalid", "the token's uscc does not match its role and org")
	}
	return firmbridge.Identity{Subject: claims.Subject, Role: claims.Role, Org: claims.Org, TokenID: claims.ID, Scopes: tokenScopes(claims.Scope)}, nil
}

// tokenScopes are the data scopes of a token's scope claim, or nil when it
// has none. Scope tokens that name no data scope grant nothing: a token
// whose scopes are all unknown reaches no data rather than all of it.
func tokenScopes(claim string) []string {
	if strings.TrimSpace(claim) == "" {
		return nil
	}
	scopes := []string{}
	for _, s := range strings.Fields(claim) {
		if firmbridge.ValidScope(s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
	if _, ok := tok.Header["crit"]; ok {
		return nil, errors.New("token header has crit extensions")
	}
	kid, _ := tok.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	for _, k := range t.keys() {
		if k.ID == kid {
			return k.Public, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

func (t *Tokens) keys() []*SigningKey {
	keys := append([]*SigningKey(nil), t.Verify...)
	if t.Signing != nil {
		keys = append(keys, t.Signing)
	}
	return keys
}

// JWKS returns the public keys as a JWK set.
func (t *Tokens) JWKS() map[string][]JWK {
	seen := map[string]bool{}
	out := []JWK{}
	for _, k := range t.keys() {
		if !seen[k.ID] {
			seen[k.ID] = true
			out = append(out, k.JWK())
		}
	}
	return map[string][]JWK{"keys": out}
}
