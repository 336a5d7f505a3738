package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/firmbridge/firmbridge"
)

// Consent receipts.
//
// Every consent change (requested, granted, approved, rejected, revoked,
// expired) yields a receipt: a compact JWS signed with the API's current
// token signing key (EdDSA, kid in the header, typ ReceiptType). Its payload
// (ReceiptClaims) states the consent's terms after the change, the event,
// when it happened, who did it, and the hash of the consent's previous
// receipt, so a consent's receipts form a chain that shows a receipt left
// out or altered. Firm and bank verify receipts offline with the keys at
// /.well-known/jwks.json and VerifyReceipt or VerifyReceiptChain; nothing
// else is needed.
//
// A receipt id is "<consent id>:<event>" (each event happens at most once
// to a consent), and an expiry receipt is a pure function of the consent
// (its time is the consent's expiry), so two API instances expiring the same
// consent sign byte-identical receipts and store one row.
//
// Store, then publish. A change is committed in this order:
//
//  1. the receipt is stored, unpublished (consent_receipts is the outbox);
//  2. the consent's new state is stored: from here on the change is in
//     force in every instance, since every consent check reads the table;
//  3. the event, carrying the receipt, is written to consent.events.v1
//     with acks=all;
//  4. the receipt is marked published; then the request is answered.
//
// If 1 or 2 fails, nothing changed and the request fails with 503
// consent_store_unavailable; a receipt stored in 1 whose consent change
// never got stored is an orphan that no chain reaches, and the sweeper
// voids it. If 3 fails, the request fails with 503
// consent_event_unavailable, but the change stands: undoing it could fail
// as well, a write whose acknowledgement was lost may have published the
// event anyway, and a stored revocation must keep biting. The sweeper
// publishes every receipt left unpublished (after ReceiptGrace), so no
// change goes unannounced. If 4 fails, the sweeper publishes the event
// again; the event id is the receipt id, so consumers drop the duplicate.
//
// The consents table is the truth; events announce it. A consumer that
// needs the state re-reads it or orders events by consent_version.

// ReceiptType is the JWS typ header of a consent receipt.
const ReceiptType = "consent-receipt+jwt"

// ExpiryActor is who a receipt says expired a consent.
const ExpiryActor = "firmbridge:expiry"

// DefaultReceiptGrace is how long a receipt may stay unpublished before the
// sweeper settles it: longer than any request takes (commitTimeout), so the
// sweeper never races a change still being made.
const DefaultReceiptGrace = 2 * time.Minute

// commitTimeout bounds one consent change; it does not end when the client
// hangs up, so a change is not abandoned half-way.
const commitTimeout = 30 * time.Second

// publishedBit marks the version of a published receipt row: it outranks
// every unpublished or void row of the same receipt, so a late writer (a
// second instance expiring the same consent) cannot un-publish it.
const publishedBit = uint64(1) << 63

// ErrReceiptInvalid is wrapped by every verification failure.
var ErrReceiptInvalid = errors.New("consent receipt invalid")

// ReceiptTerms are a consent's terms as a receipt states them.
type ReceiptTerms struct {
	ID        string     `json:"id"`
	USCC      string     `json:"uscc"`
	Grantee   string     `json:"grantee"`
	Scopes    []string   `json:"scopes"`
	Purpose   string     `json:"purpose"`
	Status    string     `json:"status"`
	ValidFrom time.Time  `json:"valid_from"`
	ExpiresAt time.Time  `json:"expires_at"`
	DataFrom  *time.Time `json:"data_from,omitempty"`
	Version   uint64     `json:"version"`
}

// ReceiptClaims is the payload of a consent receipt. Registered claims: iss
// (the API's issuer), sub (the consent id), aud (the firm's USCC and the
// grantee), iat (when the event happened), jti (the receipt id).
type ReceiptClaims struct {
	Event   string       `json:"event"`
	Seq     int          `json:"seq"`
	Prev    string       `json:"prev,omitempty"` // ReceiptHash of the previous receipt
	Consent ReceiptTerms `json:"consent"`
	Actor   string       `json:"actor"`
	Note    string       `json:"note,omitempty"`   // the bank's note, on a requested receipt
	Reason  string       `json:"reason,omitempty"` // on a rejected or revoked receipt
	jwt.RegisteredClaims
}

// ReceiptHash is the hash receipts chain by: unpadded base64url SHA-256 of
// the compact JWS.
func ReceiptHash(receipt string) string {
	sum := sha256.Sum256([]byte(receipt))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func receiptID(consentID, event string) string { return consentID + ":" + event }

// rowVersion orders the rows of one receipt by when they were written. It
// reads the wall clock, not Server.Now: it orders writes, it dates nothing.
func rowVersion() uint64 { return firmbridge.VersionOf(time.Now()) }

// receiptStore returns where receipts live: Receipts, or Consents when it
// keeps them too (schema.ConsentStore does).
func (s *Server) receiptStore() firmbridge.ConsentLifecycleStore {
	if s.Receipts != nil {
		return s.Receipts
	}
	if r, ok := s.Consents.(firmbridge.ConsentLifecycleStore); ok {
		return r
	}
	return nil
}

func (s *Server) receiptGrace() time.Duration {
	if s.ReceiptGrace > 0 {
		return s.ReceiptGrace
	}
	return DefaultReceiptGrace
}

// signReceipt signs the receipt of event for the consent state c. It uses
// only c and its arguments, so the same inputs give the same bytes
// (Ed25519 signatures are deterministic).
func (s *Server) signReceipt(c *firmbridge.Consent, event string, seq int, prev string) (string, error) {
	if s.Tokens == nil || s.Tokens.Signing == nil {
		return "", errors.New("consent receipt: no signing key configured")
	}
	terms := ReceiptTerms{ID: c.ID, USCC: c.USCC, Grantee: c.Grantee, Scopes: c.Scopes, Purpose: c.Purpose, Status: c.Status,
		ValidFrom: c.ValidFrom.UTC(), ExpiresAt: c.ExpiresAt.UTC(), Version: c.Version}
	if c.DataFrom != nil {
		d := c.DataFrom.UTC()
		terms.DataFrom = &d
	}
	claims := ReceiptClaims{Event: event, Seq: seq, Prev: prev, Consent: terms, Actor: c.UpdatedBy,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: s.Tokens.Issuer, Subject: c.ID, Audience: jwt.ClaimStrings{c.USCC, c.Grantee},
			IssuedAt: jwt.NewNumericDate(c.UpdatedAt.UTC()), ID: receiptID(c.ID, event)}}
	switch event {
	case firmbridge.ConsentEventRequested:
		claims.Note = c.Note
	case firmbridge.ConsentEventRejected, firmbridge.ConsentEventRevoked:
		claims.Reason = c.Reason
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.Tokens.Signing.ID
	tok.Header["typ"] = ReceiptType
	signed, err := tok.SignedString(s.Tokens.Signing.Private)
	if err != nil {
		return "", fmt.Errorf("sign consent receipt %s: %w", claims.ID, err)
	}
	return signed, nil
}

// commitChange stores and announces one consent change, in the order the
// package comment explains: receipt (unpublished), consent, event, mark.
// before is the stored state the change starts from, nil for a new consent.
// On a publish failure it returns the receipt together with the error: the
// change is stored.
func (s *Server) commitChange(ctx context.Context, before, next *firmbridge.Consent, event string) (*firmbridge.ConsentReceipt, error) {
	store := s.receiptStore()
	if store == nil {
		return nil, fmt.Errorf("consent %s: no receipt store configured (Server.Receipts)", next.ID)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	seq, prev := 1, ""
	if before != nil {
		rs, err := store.ReceiptsOf(ctx, next.ID)
		if err != nil {
			return nil, s.storeUnavailable(next.ID, err)
		}
		if chain := receiptChain(rs, before.Version); len(chain) > 0 {
			head := chain[len(chain)-1]
			seq, prev = head.Seq+1, head.Hash
		}
	}
	jws, err := s.signReceipt(next, event, seq, prev)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	r := &firmbridge.ConsentReceipt{ID: receiptID(next.ID, event), ConsentID: next.ID, USCC: next.USCC, Grantee: next.Grantee,
		Event: event, Seq: seq, IssuedAt: next.UpdatedAt.UTC(), JWS: jws, Hash: ReceiptHash(jws), Prev: prev,
		ConsentVersion: next.Version, State: firmbridge.ReceiptUnpublished, WrittenAt: now, Version: rowVersion()}
	if err := store.SaveReceipt(ctx, r); err != nil {
		return nil, s.storeUnavailable(next.ID, err)
	}
	if err := s.Consents.SaveConsent(ctx, next); err != nil {
		return nil, s.storeUnavailable(next.ID, err)
	}
	if err := s.publishReceipt(ctx, store, r); err != nil {
		s.logger().Error("consent event not published; the change stands and the sweeper will publish it",
			"consent_id", next.ID, "event", event, "err", err)
		return r, &firmbridge.Error{Kind: firmbridge.EUNAVAILABLE, Code: "consent_event_unavailable",
			Message: "the consent change was stored, but its event could not be written to " + firmbridge.TopicConsentEvents +
				"; it will be published automatically. Do not repeat the request: GET the consent to see its state"}
	}
	return r, nil
}

func (s *Server) storeUnavailable(consentID string, err error) error {
	s.logger().Error("consent store write failed", "consent_id", consentID, "err", err)
	return firmbridge.Errorf(firmbridge.EUNAVAILABLE, "consent_store_unavailable",
		"the consent change could not be stored, so nothing changed; retry later")
}

// publishReceipt writes the receipt's event to consent.events.v1 and marks
// the receipt published. Without a publisher it does nothing: the receipt
// stays unpublished.
func (s *Server) publishReceipt(ctx context.Context, store firmbridge.ConsentLifecycleStore, r *firmbridge.ConsentReceipt) error {
	if s.ConsentEvents == nil {
		return nil
	}
	claims, err := decodeReceipt(r.JWS)
	if err != nil {
		return err
	}
	if err := s.ConsentEvents.PublishConsentEvent(ctx, consentEventOf(claims, r.JWS)); err != nil {
		return err
	}
	done := *r
	done.State, done.Version = firmbridge.ReceiptPublished, publishedBit|rowVersion()
	if err := store.SaveReceipt(ctx, &done); err != nil {
		// The event is out; the sweeper will send it again, and consumers
		// drop the duplicate by its event id.
		s.logger().Warn("consent event published but not marked; it will be published again", "receipt_id", r.ID, "err", err)
		return nil
	}
	r.State, r.Version = done.State, done.Version
	return nil
}

// consentEventOf builds the event of a receipt from the receipt alone, so
// that whoever publishes it (the request, the sweeper, another instance)
// publishes the same event.
func consentEventOf(claims *ReceiptClaims, jws string) *firmbridge.ConsentEvent {
	t := claims.Consent
	e := &firmbridge.ConsentEvent{EventID: claims.ID, Type: claims.Event, ConsentID: t.ID, USCC: t.USCC, Grantee: t.Grantee,
		Status: t.Status, Scopes: t.Scopes, Purpose: t.Purpose, ValidFrom: t.ValidFrom, ExpiresAt: t.ExpiresAt, DataFrom: t.DataFrom,
		ConsentVersion: t.Version, Receipt: jws}
	if claims.IssuedAt != nil {
		e.Time = claims.IssuedAt.UTC()
	}
	return e
}

// decodeReceipt reads a receipt's payload without verifying it: only for
// receipts this API signed and stored itself.
func decodeReceipt(jws string) (*ReceiptClaims, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrReceiptInvalid)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrReceiptInvalid, err)
	}
	var claims ReceiptClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrReceiptInvalid, err)
	}
	return &claims, nil
}

// receiptChain returns a consent's receipts as its stored history has them,
// oldest first: from the receipt of the state with the given consent
// version (or the newest before it) back along the prev hashes. Off the
// chain are void receipts, orphans (their consent change never got stored)
// and the losing side of two instances answering one request at once.
func receiptChain(rs []*firmbridge.ConsentReceipt, version uint64) []*firmbridge.ConsentReceipt {
	byHash := map[string]*firmbridge.ConsentReceipt{}
	var head *firmbridge.ConsentReceipt
	for _, r := range rs {
		if r.State == firmbridge.ReceiptVoid || r.ConsentVersion > version {
			continue
		}
		byHash[r.Hash] = r
		if head == nil || r.ConsentVersion > head.ConsentVersion {
			head = r
		}
	}
	var chain []*firmbridge.ConsentReceipt
	for r := head; r != nil && len(chain) < len(rs); r = byHash[r.Prev] {
		chain = append(chain, r)
		if r.Prev == "" {
			break
		}
	}
	slices.Reverse(chain)
	return chain
}

// reconcileReceipts settles the receipts left unpublished for longer than
// ReceiptGrace: it publishes those whose change was stored and voids the
// orphans.
func (s *Server) reconcileReceipts(ctx context.Context, store firmbridge.ConsentLifecycleStore, limit int) (published, voided int, err error) {
	if s.ConsentEvents == nil {
		return 0, 0, nil
	}
	cutoff := s.now().UTC().Add(-s.receiptGrace())
	pending, err := store.UnpublishedReceipts(ctx, cutoff, limit)
	if err != nil {
		return 0, 0, err
	}
	var errs []error
	for _, r := range pending {
		outcome, err := s.settleReceipt(ctx, store, r.ConsentID, r.ID, cutoff)
		switch {
		case err != nil:
			errs = append(errs, err)
		case outcome == firmbridge.ReceiptPublished:
			published++
		case outcome == firmbridge.ReceiptVoid:
			voided++
		}
	}
	return published, voided, errors.Join(errs...)
}

// settleReceipt publishes or voids one unpublished receipt, deciding on the
// consent's current state read under the consent's lock. It returns the
// receipt's new state, or "" when there was nothing to do.
func (s *Server) settleReceipt(ctx context.Context, store firmbridge.ConsentLifecycleStore, consentID, id string, cutoff time.Time) (string, error) {
	unlock := s.consentLocks.lock(consentID)
	defer unlock()
	var version uint64
	c, err := s.Consents.Consent(ctx, consentID)
	switch {
	case err == nil:
		version = c.Version
	case firmbridge.ErrorKind(err) == firmbridge.ENOTFOUND:
		// A new consent whose first write failed: every receipt is an orphan.
	default:
		return "", fmt.Errorf("settle receipt %s: %w", id, err)
	}
	rs, err := store.ReceiptsOf(ctx, consentID)
	if err != nil {
		return "", fmt.Errorf("settle receipt %s: %w", id, err)
	}
	var r *firmbridge.ConsentReceipt
	for _, x := range rs {
		if x.ID == id {
			r = x
		}
	}
	// Re-read: another instance may have settled it, or a retried request
	// may be rewriting it right now.
	if r == nil || r.State != firmbridge.ReceiptUnpublished || r.WrittenAt.After(cutoff) {
		return "", nil
	}
	if c != nil && slices.Contains(receiptChain(rs, version), r) {
		if err := s.publishReceipt(ctx, store, r); err != nil {
			return "", fmt.Errorf("publish receipt %s: %w", id, err)
		}
		return firmbridge.ReceiptPublished, nil
	}
	void := *r
	void.State, void.Version = firmbridge.ReceiptVoid, rowVersion()
	if err := store.SaveReceipt(ctx, &void); err != nil {
		return "", fmt.Errorf("void receipt %s: %w", id, err)
	}
	s.logger().Info("voided a consent receipt whose change was never stored", "receipt_id", id)
	return firmbridge.ReceiptVoid, nil
}

// ReceiptList is the body of GET /v1/consents/{id}/receipts.
type ReceiptList struct {
	ConsentID string                       `json:"consent_id"`
	Receipts  []*firmbridge.ConsentReceipt `json:"receipts"`
	JWKS      string                       `json:"jwks_uri"`
}

func (s *Server) handleListReceipts(c *gin.Context) {
	ev := s.newEvent(c)
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	consent, list, err := s.ConsentReceipts(c.Request.Context(), id, c.Param("id"))
	if consent != nil {
		ev.USCC, ev.ConsentID, ev.Scopes, ev.Purpose = consent.USCC, consent.ID, consent.Scopes, consent.Purpose
	}
	s.respond(c, ev, http.StatusOK, list, err)
}

// ConsentReceipts returns a consent's receipts, oldest first, to the firm
// that granted it and the institution it was granted to.
func (s *Server) ConsentReceipts(ctx context.Context, id firmbridge.Identity, consentID string) (*firmbridge.Consent, *ReceiptList, error) {
	c, err := s.visibleConsent(ctx, id, consentID)
	if err != nil {
		return nil, nil, err
	}
	store := s.receiptStore()
	if store == nil {
		return c, nil, fmt.Errorf("consent %s: no receipt store configured (Server.Receipts)", c.ID)
	}
	rs, err := store.ReceiptsOf(ctx, c.ID)
	if err != nil {
		return c, nil, err
	}
	chain := receiptChain(rs, c.Version)
	if chain == nil {
		chain = []*firmbridge.ConsentReceipt{}
	}
	return c, &ReceiptList{ConsentID: c.ID, Receipts: chain, JWKS: "/.well-known/jwks.json"}, nil
}

// VerifyReceipt checks a consent receipt with nothing but a JWK set (the
// JSON served at /.well-known/jwks.json): the signature by the key its kid
// names, the algorithm (EdDSA only), the typ, and that the payload is
// well formed. It returns the receipt's claims. Every failure wraps
// ErrReceiptInvalid.
func VerifyReceipt(receipt string, jwks []byte) (*ReceiptClaims, error) {
	keys, err := parseJWKS(jwks)
	if err != nil {
		return nil, err
	}
	var claims ReceiptClaims
	_, err = jwt.ParseWithClaims(receipt, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != ReceiptType {
			return nil, fmt.Errorf("typ %q is not %s", typ, ReceiptType)
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New("crit header extensions are not understood")
		}
		kid, _ := t.Header["kid"].(string)
		key, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key with kid %q in the JWKS", kid)
		}
		return key, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		// A receipt records a past event and never expires; time claims
		// are checked below, not against the verifier's clock.
		jwt.WithoutClaimsValidation())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReceiptInvalid, err)
	}
	t := claims.Consent
	switch {
	case !slices.Contains(firmbridge.ConsentEventTypes, claims.Event):
		err = fmt.Errorf("unknown event %q", claims.Event)
	case claims.Seq < 1:
		err = fmt.Errorf("seq %d is not positive", claims.Seq)
	case claims.Seq == 1 && claims.Prev != "", claims.Seq > 1 && claims.Prev == "":
		err = fmt.Errorf("seq %d with prev %q", claims.Seq, claims.Prev)
	case t.ID == "" || claims.Subject != t.ID:
		err = fmt.Errorf("sub %q does not name the consent %q", claims.Subject, t.ID)
	case claims.ID != receiptID(t.ID, claims.Event):
		err = fmt.Errorf("jti %q is not %s", claims.ID, receiptID(t.ID, claims.Event))
	case claims.IssuedAt == nil:
		err = errors.New("iat is missing")
	case !slices.Contains(claims.Audience, t.USCC) || !slices.Contains(claims.Audience, t.Grantee):
		err = errors.New("aud does not name the firm and the grantee")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReceiptInvalid, err)
	}
	return &claims, nil
}

// VerifyReceiptChain verifies a consent's receipts, oldest first, as GET
// /v1/consents/{id}/receipts lists them: each receipt, then that they are
// of one consent, numbered 1, 2, ... and each names the hash of the one
// before, so none was left out, added or altered.
func VerifyReceiptChain(receipts []string, jwks []byte) ([]*ReceiptClaims, error) {
	out := make([]*ReceiptClaims, 0, len(receipts))
	for i, r := range receipts {
		claims, err := VerifyReceipt(r, jwks)
		if err != nil {
			return nil, fmt.Errorf("receipt %d: %w", i+1, err)
		}
		if claims.Seq != i+1 {
			return nil, fmt.Errorf("%w: receipt %d has seq %d", ErrReceiptInvalid, i+1, claims.Seq)
		}
		if i > 0 {
			if claims.Consent.ID != out[0].Consent.ID {
				return nil, fmt.Errorf("%w: receipt %d is of consent %s, not %s", ErrReceiptInvalid, i+1, claims.Consent.ID, out[0].Consent.ID)
			}
			if claims.Prev != ReceiptHash(receipts[i-1]) {
				return nil, fmt.Errorf("%w: receipt %d does not follow receipt %d", ErrReceiptInvalid, i+1, i)
			}
		}
		out = append(out, claims)
	}
	return out, nil
}

// parseJWKS reads the Ed25519 signing keys of a JWK set, by kid.
func parseJWKS(data []byte) (map[string]ed25519.PublicKey, error) {
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %w", ErrReceiptInvalid, err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || k.Kid == "" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the JWKS has no Ed25519 signing key", ErrReceiptInvalid)
	}
	return keys, nil
}
