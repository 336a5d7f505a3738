package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SigningKey is an Ed25519 key with its key id. The key id is the RFC 7638
// JWK thumbprint of the public key, so it is stable and needs no registry.
type SigningKey struct {
	ID      string
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
}

// NewSigningKey wraps an Ed25519 private key.
func NewSigningKey(priv ed25519.PrivateKey) *SigningKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &SigningKey{ID: thumbprint(pub), Private: priv, Public: pub}
}

// GenerateSigningKey makes a new random key.
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return NewSigningKey(priv), nil
}

// LoadSigningKey reads a PKCS#8 PEM Ed25519 private key.
func LoadSigningKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w (create one with `firmbridge keygen --key-file %s`)", err, path)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM \"PRIVATE KEY\" block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an Ed25519 key", path)
	}
	return NewSigningKey(priv), nil
}

// LoadVerifyKey reads a key that only verifies tokens, as during a key
// rotation: a PKIX "PUBLIC KEY" or a PKCS#8 "PRIVATE KEY" Ed25519 PEM. Only
// the public half is kept.
func LoadVerifyKey(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read verification key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("verification key %s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("verification key %s: PEM block %q, want PUBLIC KEY or PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("verification key %s: %w", path, err)
	}
	var pub ed25519.PublicKey
	switch k := key.(type) {
	case ed25519.PublicKey:
		pub = k
	case ed25519.PrivateKey:
		pub = k.Public().(ed25519.PublicKey)
	default:
		return nil, fmt.Errorf("verification key %s: not an Ed25519 key", path)
	}
	return &SigningKey{ID: thumbprint(pub), Public: pub}, nil
}

// WriteSigningKey stores the key as PKCS#8 PEM, readable by its owner only.
// It refuses to overwrite an existing file.
func WriteSigningKey(path string, k *SigningKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("signing key %s exists; not overwritten", path)
		}
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write signing key: %w", err)
	}
	return f.Close()
}

// JWK is a public key in JSON Web Key form.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWK returns the public half as a JWK.
func (k *SigningKey) JWK() JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public), Kid: k.ID, Alg: "EdDSA", Use: "sig"}
}

func thumbprint(pub ed25519.PublicKey) string {
	// RFC 7638: the required members in lexicographic order, no whitespace.
	canon, _ := json.Marshal(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
	}{"Ed25519", "OKP", base64.RawURLEncoding.EncodeToString(pub)})
	sum := sha256.Sum256(canon)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
