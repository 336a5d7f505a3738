package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
)

func MustKey(t *testing.T) *api.SigningKey {
	t.Helper()
	k, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTokens_IssueAndParse(t *testing.T) {
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t)}
	raw, err := tokens.Issue("alice@bank", firmbridge.RoleBank, "BANK-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tokens.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := firmbridge.Identity{Subject: "alice@bank", Role: "bank", Org: "BANK-1", TokenID: id.TokenID}
	if !reflect.DeepEqual(id, want) || id.TokenID == "" {
		t.Errorf("Parse = %+v, want %+v with a token id", id, want)
	}
}

// A token's scope claim becomes the identity's data scopes: nil without
// one, and scope tokens that name no data scope grant nothing.
func TestTokens_ParseScopes(t *testing.T) {
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t)}
	for claim, want := range map[string][]string{
		"":                         nil,
		"tax":                      {"tax"},
		"patent tax patent":        {"patent", "tax"},
		"profiles:read":            {},
		"operations profiles:read": {"operations"},
	} {
		raw, err := tokens.IssueGrant(api.Grant{Subject: "c-1", Role: firmbridge.RoleBank, Org: "BANK-1", ClientID: "c-1", Scope: claim, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		id, err := tokens.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(id.Scopes, want) {
			t.Errorf("scope %q: Scopes %#v, want %#v", claim, id.Scopes, want)
		}
		for _, sc := range firmbridge.Scopes {
			if got := id.Allows(sc); got != (want == nil || slices.Contains(want, sc)) {
				t.Errorf("scope %q: Allows(%s) = %v", claim, sc, got)
			}
		}
	}
}

// attackNow is the verifier's clock in the attack tests.
var attackNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// validClaims are the claims of an acceptable token at attackNow.
func validClaims() api.Claims {
	return api.Claims{Role: "bank", Org: "BANK-1", RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "firmbridge", Subject: "s", Audience: jwt.ClaimStrings{"firmbridge-api"},
		IssuedAt: jwt.NewNumericDate(attackNow), ExpiresAt: jwt.NewNumericDate(attackNow.Add(time.Hour))}}
}

// signWith signs c with k's private key under k's kid, plus any extra
// header fields.
func signWith(t *testing.T, c jwt.Claims, k *api.SigningKey, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = k.ID
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// attacks are tokens a verifier trusting key, with a leeway of 30 s at
// attackNow, must refuse; "valid control" is one it must accept.
func attacks(t *testing.T, key *api.SigningKey) map[string]string {
	t.Helper()
	other := MustKey(t)
	edit := func(f func(*api.Claims)) string {
		c := validClaims()
		f(&c)
		return signWith(t, c, key, nil)
	}
	return map[string]string{
		"valid control": signWith(t, validClaims(), key, nil),
		"alg none": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HMAC signed with the public key": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString([]byte(key.Public))
			return s
		}(),
		"HMAC signed with the JWK x": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString([]byte(key.JWK().X))
			return s
		}(),
		"unknown kid": signWith(t, validClaims(), other, nil),
		"no kid": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims())
			s, _ := tok.SignedString(key.Private)
			return s
		}(),
		"known kid, another key's signature": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString(other.Private)
			return s
		}(),
		"bad signature": func() string {
			s := signWith(t, validClaims(), key, nil)
			parts := strings.Split(s, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 0xff
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}(),
		"claims altered after signing": func() string {
			s := signWith(t, validClaims(), key, nil)
			parts := strings.Split(s, ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			payload = []byte(strings.Replace(string(payload), `"role":"bank"`, `"role":"admin"`, 1))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		}(),
		"unknown crit extension": signWith(t, validClaims(), key, map[string]any{"crit": []string{"exp-ext"}, "exp-ext": true}),
		"expired":                edit(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-time.Minute)) }),
		"wrong audience":         edit(func(c *api.Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} }),
		"wrong issuer":           edit(func(c *api.Claims) { c.Issuer = "evil" }),
		"no iss":                 edit(func(c *api.Claims) { c.Issuer = "" }),
		"no aud":                 edit(func(c *api.Claims) { c.Audience = nil }),
		"no exp":                 edit(func(c *api.Claims) { c.ExpiresAt = nil }),
		"no iat":                 edit(func(c *api.Claims) { c.IssuedAt = nil }),
		"no sub":                 edit(func(c *api.Claims) { c.Subject = "" }),
		"no role":                edit(func(c *api.Claims) { c.Role = "" }),
		"no org":                 edit(func(c *api.Claims) { c.Org = "" }),
		"unknown role":           edit(func(c *api.Claims) { c.Role = "root" }),
		"issued in the future beyond skew": edit(func(c *api.Claims) {
			c.IssuedAt = jwt.NewNumericDate(attackNow.Add(5 * time.Minute))
		}),
		"expired just beyond skew": edit(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-31 * time.Second)) }),
		"not valid before, beyond skew": edit(func(c *api.Claims) {
			c.NotBefore = jwt.NewNumericDate(attackNow.Add(time.Minute))
		}),
		"lifetime beyond 24h":  edit(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(25 * time.Hour)) }),
		"uscc on a bank token": edit(func(c *api.Claims) { c.USCC = "91350100M000100Y43" }),
	}
}

func TestTokens_Rejects(t *testing.T) {
	key := MustKey(t)
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key, Leeway: 30 * time.Second, Now: func() time.Time { return attackNow }}
	for name, raw := range attacks(t, key) {
		t.Run(name, func(t *testing.T) {
			_, err := tokens.Parse(raw)
			if name == "valid control" {
				if err != nil {
					t.Fatalf("valid token rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("token accepted, want rejection")
			}
			if got := firmbridge.ErrorKind(err); got != firmbridge.EUNAUTHORIZED {
				t.Errorf("kind = %s, want %s", got, firmbridge.EUNAUTHORIZED)
			}
		})
	}
}

// TestTokens_AttacksGet401Problem sends every attack to an API route: each
// must be 401 problem+json with a token_* code, a request id and a Bearer
// challenge, and must not reach the route.
func TestTokens_AttacksGet401Problem(t *testing.T) {
	key := MustKey(t)
	audit := &memAudit{}
	srv := &api.Server{Audit: audit, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
		Tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key, Leeway: 30 * time.Second, Now: func() time.Time { return attackNow }}}
	h := srv.Handler()
	for name, raw := range attacks(t, key) {
		t.Run(name, func(t *testing.T) {
			// The admin list is refused to a bank with 403: a 401 proves the
			// token itself was refused, before the role matrix.
			req := httptest.NewRequest(http.MethodGet, "/v1/admin/clients", nil)
			req.Header.Set("Authorization", "Bearer "+raw)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if name == "valid control" {
				if rec.Code != http.StatusForbidden {
					t.Fatalf("valid bank token: status %d, want 403 from the role matrix; body %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", rec.Code, rec.Body)
			}
			p := mustProblemJSON(t, rec)
			if !strings.HasPrefix(p.Code, "token_") || p.Status != 401 {
				t.Errorf("problem %+v, want status 401 and a token_* code", p)
			}
			if h := rec.Header().Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q, want a Bearer invalid_token challenge", h)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/admin/clients", nil))
		if p := mustProblemJSON(t, rec); rec.Code != 401 || p.Code != "token_missing" {
			t.Errorf("status %d code %s, want 401 token_missing", rec.Code, p.Code)
		}
	})
}

// TestTokens_ClockSkew: the leeway forgives small clock differences in
// both directions, and no configuration stretches it past MaxLeeway.
func TestTokens_ClockSkew(t *testing.T) {
	key := MustKey(t)
	at := func(leeway time.Duration) *api.Tokens {
		return &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key, Leeway: leeway, Now: func() time.Time { return attackNow }}
	}
	sign := func(f func(*api.Claims)) string {
		c := validClaims()
		f(&c)
		return signWith(t, c, key, nil)
	}
	cases := []struct {
		name   string
		leeway time.Duration
		raw    string
		ok     bool
	}{
		{"expired within skew", 30 * time.Second, sign(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-20 * time.Second)) }), true},
		{"issued ahead within skew", 30 * time.Second, sign(func(c *api.Claims) { c.IssuedAt = jwt.NewNumericDate(attackNow.Add(20 * time.Second)) }), true},
		{"not before within skew", 30 * time.Second, sign(func(c *api.Claims) { c.NotBefore = jwt.NewNumericDate(attackNow.Add(20 * time.Second)) }), true},
		{"expired beyond skew", 30 * time.Second, sign(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-40 * time.Second)) }), false},
		{"no leeway", 0, sign(func(c *api.Claims) { c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-time.Second)) }), false},
		{"an hour of leeway is cut to MaxLeeway", time.Hour, sign(func(c *api.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(attackNow.Add(-api.MaxLeeway - time.Minute))
		}), false},
		{"negative leeway counts as none", -time.Hour, sign(func(*api.Claims) {}), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := at(tc.leeway).Parse(tc.raw)
			if (err == nil) != tc.ok {
				t.Errorf("Parse error %v, want accepted=%v", err, tc.ok)
			}
			if err != nil && firmbridge.ErrorCode(err) != "token_expired" && firmbridge.ErrorCode(err) != "token_invalid" {
				t.Errorf("code %s, want token_expired or token_invalid", firmbridge.ErrorCode(err))
			}
		})
	}
}

// TestTokens_Rotation: during a rotation the new key signs, both keys
// verify and both are in the JWKS; once the old key is retired its
// tokens are refused.
func TestTokens_Rotation(t *testing.T) {
	old, next := MustKey(t), MustKey(t)
	before := &api.Tokens{Issuer: "i", Audience: "a", Signing: old}
	oldToken, err := before.Issue("s", "bank", "B", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	during := &api.Tokens{Issuer: "i", Audience: "a", Signing: next, Verify: []*api.SigningKey{old}}
	newToken, err := during.Issue("s", "bank", "B", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"old key": oldToken, "new key": newToken} {
		if _, err := during.Parse(raw); err != nil {
			t.Errorf("token of the %s rejected during rotation: %v", name, err)
		}
	}
	kids := map[string]bool{}
	for _, k := range during.JWKS()["keys"] {
		kids[k.Kid] = true
	}
	if len(kids) != 2 || !kids[old.ID] || !kids[next.ID] {
		t.Errorf("JWKS kids %v, want the old and the new key", kids)
	}
	after := &api.Tokens{Issuer: "i", Audience: "a", Signing: next}
	if _, err := after.Parse(oldToken); err == nil {
		t.Error("token of the retired key accepted")
	}
	if _, err := after.Parse(newToken); err != nil {
		t.Errorf("token of the current key rejected: %v", err)
	}
}

func TestLoadVerifyKey(t *testing.T) {
	key := MustKey(t)
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(key.Public)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "old.pub.pem")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	privPath := filepath.Join(dir, "old.pem")
	if err := api.WriteSigningKey(privPath, key); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{pubPath, privPath} {
		k, err := api.LoadVerifyKey(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if k.ID != key.ID || k.Private != nil {
			t.Errorf("%s: kid %s private %v, want kid %s and no private key", path, k.ID, k.Private != nil, key.ID)
		}
	}
}

func TestSigningKey_ThumbprintStable(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	a := api.NewSigningKey(ed25519.NewKeyFromSeed(seed))
	b := api.NewSigningKey(ed25519.NewKeyFromSeed(seed))
	if a.ID != b.ID || a.ID == "" {
		t.Errorf("kid %q and %q differ for one key", a.ID, b.ID)
	}
}
