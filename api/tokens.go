package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/firmbridge/firmbridge"
)

// Claims are firmbridge's token claims: the registered ones plus role and org.
type Claims struct {
	Role string `json:"role"`
	Org  string `json:"org"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies access tokens. Only EdDSA is accepted; keys
// are found by kid, so several keys can be live at once during rotation.
type Tokens struct {
	Issuer   string
	Audience string
	Signing  *SigningKey   // signs new tokens
	Verify   []*SigningKey // accepted for verification; Signing is always accepted
	Leeway   time.Duration // clock skew tolerated on exp, nbf and iat
	Now      func() time.Time
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Issue signs a token for subject with role and org, valid for ttl.
func (t *Tokens) Issue(subject, role, org string, ttl time.Duration) (string, error) {
	if !firmbridge.ValidRole(role) {
		return "", firmbridge.Errorf(firmbridge.EINVALID, "invalid_role", "role %q is not one of bank, enterprise, regulator, provider, admin", role)
	}
	if org == "" {
		return "", firmbridge.Errorf(firmbridge.EINVALID, "invalid_org", "org is required")
	}
	if ttl <= 0 || ttl > 24*time.Hour {
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
	claims := Claims{Role: role, Org: org, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: t.Issuer, Subject: subject, Audience: jwt.ClaimStrings{t.Audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID: hex.EncodeToString(jti),
	}}
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
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(t.Leeway),
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
	return firmbridge.Identity{Subject: claims.Subject, Role: claims.Role, Org: claims.Org, TokenID: claims.ID}, nil
}

func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
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
