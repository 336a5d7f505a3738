package api

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// DefaultClientTokenTTL is the lifetime of a client-credentials token. It
// also bounds how long a disabled client's tokens keep working.
const DefaultClientTokenTTL = time.Hour

// maxTokenRequestBytes bounds a token request: a few short form fields.
const maxTokenRequestBytes = 8 << 10

// TokenResponse is the RFC 6749 §5.1 answer of POST /v1/auth/token.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope,omitempty"`
}

// OAuthError is the RFC 6749 §5.2 error answer of POST /v1/auth/token.
type OAuthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
}

func oauthErr(status int, code, description string) *OAuthError {
	return &OAuthError{Error: code, Description: description, status: status}
}

var errOAuthInvalidClient = oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication failed")

func (s *Server) tokenTTL() time.Duration {
	if s.TokenTTL > 0 {
		return min(s.TokenTTL, MaxTokenTTL)
	}
	return DefaultClientTokenTTL
}

// handleToken is POST /v1/auth/token, the OAuth2 client credentials grant
// (RFC 6749 §4.4). The client authenticates with HTTP Basic or with
// client_id and client_secret form fields, never both.
func (s *Server) handleToken(c *gin.Context) {
	// RFC 6749 §5.1: token responses must not be cached.
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	resp, oerr := s.token(c)
	if oerr != nil {
		if oerr.status == http.StatusUnauthorized {
			c.Header("WWW-Authenticate", `Basic realm="firmbridge", charset="UTF-8"`)
		}
		c.AbortWithStatusJSON(oerr.status, oerr)
		return
	}
	c.JSON(http.StatusOK, resp)
}

func (s *Server) token(c *gin.Context) (*TokenResponse, *OAuthError) {
	if s.Clients == nil {
		return nil, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "this server does not issue client credentials tokens")
	}
	if c.Request.URL.RawQuery != "" {
		// Credentials in a URL end up in logs and histories.
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "parameters belong in the request body, not the query string")
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxTokenRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, oauthErr(http.StatusBadRequest, "invalid_request", "the request body is too large")
		}
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "the request body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "the body is not valid form encoding")
	}
	for name, values := range form {
		if len(values) > 1 {
			return nil, oauthErr(http.StatusBadRequest, "invalid_request", "parameter "+name+" is repeated")
		}
	}
	switch grant := form.Get("grant_type"); grant {
	case "":
		return nil, oauthErr(http.StatusBadRequest, "invalid_request", "grant_type is required")
	case "client_credentials":
	default:
		return nil, oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
	}
	requested, oerr := parseScope(form)
	if oerr != nil {
		return nil, oerr
	}
	id, secret, oerr := clientCredentials(c.Request, form)
	if oerr != nil {
		return nil, oerr
	}
	client, err := s.Clients.Authenticate(c.Request.Context(), id, secret)
	if err != nil {
		if firmbridge.ErrorKind(err) == firmbridge.EUNAUTHORIZED {
			return nil, errOAuthInvalidClient
		}
		s.logger().Error("client authentication could not run", "request_id", requestID(c), "err", err)
		return nil, oauthErr(http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
	}
	granted := client.Scopes
	if requested != nil {
		for _, sc := range requested {
			if !slices.Contains(client.Scopes, sc) {
				return nil, oauthErr(http.StatusBadRequest, "invalid_scope", "scope "+sc+" is not registered for this client")
			}
		}
		granted = requested
	}
	ttl := s.tokenTTL()
	raw, err := s.Tokens.IssueGrant(Grant{Subject: client.ID, Role: client.Role, Org: client.Org, ClientID: client.ID,
		Scope: strings.Join(granted, " "), TTL: ttl})
	if err != nil {
		if firmbridge.ErrorKind(err) == firmbridge.EINVALID {
			// The registration no longer yields a valid token (say, a role
			// that was retired): the client may not use this grant.
			return nil, oauthErr(http.StatusBadRequest, "unauthorized_client", "this client cannot be issued a token: "+firmbridge.ErrorMessage(err))
		}
		s.logger().Error("issue client token", "request_id", requestID(c), "client_id", client.ID, "err", err)
		return nil, oauthErr(http.StatusInternalServerError, "server_error", "the token could not be issued")
	}
	s.logger().Info("client token issued", "request_id", requestID(c), "client_id", client.ID, "role", client.Role, "org", client.Org)
	resp := &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second)}
	if len(granted) > 0 {
		resp.Scope = strings.Join(granted, " ")
	}
	return resp, nil
}

// parseScope returns the requested scopes, or nil when none were asked for.
func parseScope(form url.Values) ([]string, *OAuthError) {
	if _, ok := form["scope"]; !ok {
		return nil, nil
	}
	var out []string
	for _, sc := range strings.Split(form.Get("scope"), " ") {
		if sc == "" {
			continue
		}
		if !scopeTokenPattern.MatchString(sc) {
			return nil, oauthErr(http.StatusBadRequest, "invalid_scope", "scope must be space-separated scope tokens")
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if out == nil {
		return nil, oauthErr(http.StatusBadRequest, "invalid_scope", "scope is empty")
	}
	return out, nil
}

// clientCredentials reads the client's id and secret from HTTP Basic
// (RFC 6749 §2.3.1, both form-encoded before base64) or from the body.
func clientCredentials(r *http.Request, form url.Values) (string, string, *OAuthError) {
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	_, hasFormSecret := form["client_secret"]
	h := r.Header.Get("Authorization")
	if h == "" {
		if formID == "" || !hasFormSecret {
			return "", "", oauthErr(http.StatusUnauthorized, "invalid_client", "client authentication is required: HTTP Basic, or client_id and client_secret")
		}
		return formID, formSecret, nil
	}
	scheme, encoded, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", oauthErr(http.StatusUnauthorized, "invalid_client", "the token endpoint takes HTTP Basic client authentication")
	}
	if hasFormSecret {
		return "", "", oauthErr(http.StatusBadRequest, "invalid_request", "use one client authentication method, not both")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", errOAuthInvalidClient
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errOAuthInvalidClient
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil {
		return "", "", errOAuthInvalidClient
	}
	if formID != "" && formID != id {
		return "", "", oauthErr(http.StatusBadRequest, "invalid_request", "client_id in the body differs from the one in the Authorization header")
	}
	return id, secret, nil
}
