package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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
	if id != want || id.TokenID == "" {
		t.Errorf("Parse = %+v, want %+v with a token id", id, want)
	}
}

func TestTokens_Rejects(t *testing.T) {
	key := MustKey(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key, Leeway: 30 * time.Second, Now: func() time.Time { return now }}
	claims := func() api.Claims {
		return api.Claims{Role: "bank", Org: "BANK-1", RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "firmbridge", Subject: "s", Audience: jwt.ClaimStrings{"firmbridge-api"},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	}
	sign := func(c api.Claims, k *api.SigningKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = k.ID
		s, err := tok.SignedString(k.Private)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other := MustKey(t)
	cases := map[string]string{
		"valid control": sign(claims(), key),
		"alg none": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(),
		"HMAC signed with the public key": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
			tok.Header["kid"] = key.ID
			s, _ := tok.SignedString([]byte(key.Public))
			return s
		}(),
		"unknown kid": sign(claims(), other),
		"bad signature": func() string {
			s := sign(claims(), key)
			parts := strings.Split(s, ".")
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			sig[0] ^= 0xff
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}(),
		"expired": func() string {
			c := claims()
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute))
			return sign(c, key)
		}(),
		"wrong audience": func() string {
			c := claims()
			c.Audience = jwt.ClaimStrings{"someone-else"}
			return sign(c, key)
		}(),
		"wrong issuer": func() string {
			c := claims()
			c.Issuer = "evil"
			return sign(c, key)
		}(),
		"no expiry": func() string {
			c := claims()
			c.ExpiresAt = nil
			return sign(c, key)
		}(),
		"unknown role": func() string {
			c := claims()
			c.Role = "root"
			return sign(c, key)
		}(),
		"issued in the future beyond skew": func() string {
			c := claims()
			c.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute))
			return sign(c, key)
		}(),
	}
	for name, raw := range cases {
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

func TestTokens_RotationKeepsOldKeyValid(t *testing.T) {
	old, next := MustKey(t), MustKey(t)
	before := &api.Tokens{Issuer: "i", Audience: "a", Signing: old}
	raw, err := before.Issue("s", "bank", "B", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	after := &api.Tokens{Issuer: "i", Audience: "a", Signing: next, Verify: []*api.SigningKey{old}}
	if _, err := after.Parse(raw); err != nil {
		t.Errorf("token of the previous key rejected during rotation: %v", err)
	}
	if n := len(after.JWKS()["keys"]); n != 2 {
		t.Errorf("JWKS has %d keys, want 2 during rotation", n)
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
