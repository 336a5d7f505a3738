package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Client secrets are 32 random bytes, shown once and stored only as an
// argon2id hash. The prefix lets secret scanners recognise a leaked one.
const (
	clientSecretPrefix = "fbcs_"
	clientSecretBytes  = 32
	maxClientSecretLen = 256
)

// newClientSecret returns a fresh secret in the form clients send it.
func newClientSecret() (string, error) {
	b := make([]byte, clientSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("client secret: %w", err)
	}
	return clientSecretPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// argonParams are the argon2id cost parameters, stored with every hash so
// they can be raised later without invalidating existing secrets.
type argonParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	KeyLen  uint32
}

// defaultArgon is OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane).
// Secrets are 256 random bits, so the hash guards a stolen table, not a
// guessable password; more cost would only slow /v1/auth/token.
var defaultArgon = argonParams{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32}

var errBadHash = errors.New("client secret hash: not a supported argon2id PHC string")

// hashSecret returns the PHC string of secret:
// $argon2id$v=19$m=…,t=…,p=…$salt$hash (unpadded standard base64).
func hashSecret(secret string, p argonParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("client secret salt: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// verifySecret reports whether secret matches the PHC hash, comparing in
// constant time.
func verifySecret(secret, hash string) (bool, error) {
	p, salt, want, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(secret), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func parseHash(hash string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errBadHash
	}
	// Bounds keep a corrupted row from costing gigabytes or minutes.
	if p.Memory < 8 || p.Memory > 256*1024 || p.Time < 1 || p.Time > 16 || p.Threads < 1 || p.Threads > 16 {
		return p, nil, nil, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	p.KeyLen = uint32(len(key))
	return p, salt, key, nil
}
