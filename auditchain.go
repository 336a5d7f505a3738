package firmbridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The audit chain makes the access log tamper-evident. The sealer gives
// every access event of a chain (one per partition of audit.access.v1) a
// dense sequence number starting at 1 and a hash
//
//	hash(n) = SHA-256(hash(n-1) ‖ canonical bytes of event n), hash(0) = 32 zero bytes,
//
// and now and then signs a digest: the chain, the range of sequence numbers
// it adds, the last hash, and the previous digest's signature. Changing,
// removing, inserting or reordering an event breaks the hashes after it;
// rewriting all of them breaks the last hash of a signed digest; and the
// digests chain to each other, so none can be dropped unnoticed.

// AuditCanonicalVersion is the version of the canonical event encoding. It
// is inside the encoded bytes ("v"), so a future encoding can coexist with
// events sealed under this one.
const AuditCanonicalVersion = 1

// ChainHash is a SHA-256 hash of an audit chain. Its text form is lower-case hex.
type ChainHash [sha256.Size]byte

// GenesisHash is the "previous hash" of a chain's first event.
var GenesisHash ChainHash

func (h ChainHash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler (hex).
func (h ChainHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (h *ChainHash) UnmarshalText(b []byte) error {
	p, err := ParseChainHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseChainHash reads the hex form of a chain hash.
func ParseChainHash(s string) (ChainHash, error) {
	var h ChainHash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("chain hash %q: want %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("chain hash %q: %w", s, err)
	}
	return h, nil
}

// NextChainHash returns SHA-256(prev ‖ canonical).
func NextChainHash(prev ChainHash, canonical []byte) ChainHash {
	d := sha256.New()
	d.Write(prev[:])
	d.Write(canonical)
	var h ChainHash
	d.Sum(h[:0])
	return h
}

// auditTimeLayout is the canonical form of an event time: RFC 3339 in UTC
// with exactly nine fractional digits, so one instant has one spelling.
const auditTimeLayout = "2006-01-02T15:04:05.000000000Z"

// The stored event time is a ClickHouse DateTime: seconds from 1970 in 32
// unsigned bits. Events outside it could not be stored, so they are rejected
// before they get a sequence number.
var (
	auditMinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	auditMaxTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CanonicalAccessEvent returns the canonical bytes of an access event,
// version 1: a JSON object whose members are in lexicographic order, with
// no whitespace, strings escaped only where JSON requires it (\" \\ \b \f \n
// \r \t, other control characters as \u00xx), integers in decimal,
// occurred_at in UTC with nine fractional digits, scopes in their given
// order, and "v":1. These are the rules of RFC 8785 (JCS), so any JCS
// implementation reproduces the bytes from the same values.
func CanonicalAccessEvent(e *AccessEvent) ([]byte, error) {
	if err := ValidateAuditEvent(e); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(512)
	str := func(name, v string, first bool) {
		if !first {
			b.WriteByte(',')
		}
		appendJSONString(&b, name)
		b.WriteByte(':')
		appendJSONString(&b, v)
	}
	b.WriteByte('{')
	str("client_addr", e.ClientAddr, true)
	str("consent_id", e.ConsentID, false)
	str("decision", e.Decision, false)
	str("event_id", e.EventID, false)
	str("method", e.Method, false)
	str("occurred_at", e.OccurredAt.UTC().Format(auditTimeLayout), false)
	str("org", e.Org, false)
	str("path", e.Path, false)
	str("purpose", e.Purpose, false)
	str("reason", e.Reason, false)
	str("request_id", e.RequestID, false)
	str("role", e.Role, false)
	b.WriteString(`,"scopes":[`)
	for i, s := range e.Scopes {
		if i > 0 {
			b.WriteByte(',')
		}
		appendJSONString(&b, s)
	}
	b.WriteString(`],"status":`)
	b.WriteString(strconv.Itoa(e.Status))
	str("subject", e.Subject, false)
	str("uscc", e.USCC, false)
	b.WriteString(`,"v":`)
	b.WriteString(strconv.Itoa(AuditCanonicalVersion))
	b.WriteByte('}')
	return b.Bytes(), nil
}

func appendJSONString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20:
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	b.WriteByte('"')
}

// ValidateAuditEvent checks that an access event can be sealed and stored:
// it has an id and a time the store can hold, a known decision, a status
// that fits, and valid UTF-8 everywhere (so its canonical bytes are JSON).
// It returns a *Reject: such an event is dead-lettered, never sealed.
func ValidateAuditEvent(e *AccessEvent) error {
	switch {
	case e == nil:
		return &Reject{Code: RejectInvalidEnvelope, Message: "no access event"}
	case e.EventID == "":
		return &Reject{Code: RejectMissingField, Field: "event_id", Message: "an access event needs event_id"}
	case e.OccurredAt.IsZero():
		return &Reject{Code: RejectMissingField, Field: "occurred_at", Message: "an access event needs occurred_at"}
	case e.OccurredAt.Before(auditMinTime) || !e.OccurredAt.Before(auditMaxTime):
		return &Reject{Code: RejectInvalidDate, Field: "occurred_at", Message: "occurred_at must lie between 1970 and 2105"}
	case e.Decision != DecisionAllow && e.Decision != DecisionDeny:
		return &Reject{Code: RejectInvalidEnum, Field: "decision", Message: fmt.Sprintf("decision %q is neither allow nor deny", e.Decision)}
	case e.Status < 0 || e.Status > 999:
		return &Reject{Code: RejectImplausible, Field: "status", Message: fmt.Sprintf("status %d is not an HTTP status", e.Status)}
	}
	fields := []struct{ name, v string }{{"event_id", e.EventID}, {"request_id", e.RequestID}, {"subject", e.Subject},
		{"role", e.Role}, {"org", e.Org}, {"uscc", e.USCC}, {"purpose", e.Purpose}, {"consent_id", e.ConsentID},
		{"reason", e.Reason}, {"client_addr", e.ClientAddr}, {"method", e.Method}, {"path", e.Path}}
	for _, s := range e.Scopes {
		fields = append(fields, struct{ name, v string }{"scopes", s})
	}
	for _, f := range fields {
		if !utf8.ValidString(f.v) {
			return &Reject{Code: RejectInvalidEncoding, Field: f.name, Message: f.name + " is not valid UTF-8"}
		}
	}
	return nil
}

// DecodeAuditMessage decodes an access event as the API writes it to
// audit.access.v1 and validates it for sealing. Unknown members are
// refused rather than dropped: a field the canonical encoding does not know
// would otherwise go unsealed without anyone noticing.
func DecodeAuditMessage(value []byte) (*AccessEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	var e AccessEvent
	if err := dec.Decode(&e); err != nil {
		return nil, &Reject{Code: RejectInvalidEnvelope, Message: "not a JSON access event: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Reject{Code: RejectInvalidEnvelope, Message: "data after the access event"}
	}
	if err := ValidateAuditEvent(&e); err != nil {
		return nil, err
	}
	e.OccurredAt = e.OccurredAt.UTC()
	return &e, nil
}

// DecodeCanonicalAccessEvent reads canonical bytes back into an event. It
// fails unless the bytes are exactly the canonical encoding of the event
// they hold.
func DecodeCanonicalAccessEvent(canonical []byte) (*AccessEvent, error) {
	var w struct {
		AccessEvent
		V *int `json:"v"`
	}
	dec := json.NewDecoder(bytes.NewReader(canonical))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("canonical event: %w", err)
	}
	if w.V == nil || *w.V != AuditCanonicalVersion {
		return nil, fmt.Errorf("canonical event: version is not %d", AuditCanonicalVersion)
	}
	again, err := CanonicalAccessEvent(&w.AccessEvent)
	if err != nil {
		return nil, fmt.Errorf("canonical event: %w", err)
	}
	if !bytes.Equal(again, canonical) {
		return nil, errors.New("canonical event: bytes are not in canonical form")
	}
	w.AccessEvent.OccurredAt = w.AccessEvent.OccurredAt.UTC()
	return &w.AccessEvent, nil
}

// SealedEvent is an access event in its chain.
type SealedEvent struct {
	Chain        uint32
	Seq          uint64
	Hash         ChainHash
	Canonical    []byte
	SourceOffset int64 // the Kafka offset it was sealed from
	// Event holds the event as stored in queryable columns; the verifier
	// checks it against Canonical. Nil when only the canonical bytes are at
	// hand, as in an export.
	Event *AccessEvent
}

// ChainState is where a chain stands after the last stored batch: the
// sealer's checkpoint.
type ChainState struct {
	Chain      uint32
	LastSeq    uint64    // 0 before the first event
	LastHash   ChainHash // GenesisHash before the first event
	NextOffset int64     // the next Kafka offset to seal; -1 when nothing was read yet
}

// NewChainState is the state of a chain that has sealed nothing.
func NewChainState(chain uint32) ChainState {
	return ChainState{Chain: chain, NextOffset: -1}
}

// Seal appends an event to the chain and returns it sealed.
func (s *ChainState) Seal(e *AccessEvent, offset int64) (SealedEvent, error) {
	canon, err := CanonicalAccessEvent(e)
	if err != nil {
		return SealedEvent{}, err
	}
	h := NextChainHash(s.LastHash, canon)
	s.LastSeq++
	s.LastHash = h
	s.NextOffset = offset + 1
	return SealedEvent{Chain: s.Chain, Seq: s.LastSeq, Hash: h, Canonical: canon, SourceOffset: offset, Event: e}, nil
}

// AuditDigest is a signed statement that a chain holds events 1 to LastSeq
// ending in LastHash. Each digest adds the range FirstSeq..LastSeq (empty
// when nothing was sealed since the one before, FirstSeq = LastSeq+1) and
// carries the previous digest's signature, so digests form a chain of
// their own. Number counts a chain's digests from 1.
type AuditDigest struct {
	Chain         uint32    `json:"chain"`
	Number        uint64    `json:"number"`
	FirstSeq      uint64    `json:"first_seq"`
	LastSeq       uint64    `json:"last_seq"`
	LastHash      ChainHash `json:"last_hash"`
	PrevSignature []byte    `json:"prev_signature"` // empty for digest 1
	SignedAt      time.Time `json:"signed_at"`      // whole seconds, UTC
	KeyID         string    `json:"key_id"`
	Signature     []byte    `json:"signature"` // Ed25519 over SigningBytes
}

// AuditDigestVersion is the version of the digest's signed encoding.
const AuditDigestVersion = 1

// NextAuditDigest returns the unsigned digest that follows prev (nil for a
// chain's first) and covers the chain up to state. Its time is cut to whole
// seconds so that it survives storage as a DateTime unchanged.
func NextAuditDigest(prev *AuditDigest, state ChainState, signedAt time.Time) AuditDigest {
	d := AuditDigest{Chain: state.Chain, Number: 1, FirstSeq: 1, LastSeq: state.LastSeq, LastHash: state.LastHash,
		SignedAt: signedAt.UTC().Truncate(time.Second)}
	if prev != nil {
		d.Number = prev.Number + 1
		d.FirstSeq = prev.LastSeq + 1
		d.PrevSignature = slices.Clone(prev.Signature)
	}
	return d
}

// SigningBytes is what the digest's signature covers, version 1: a JSON
// object in RFC 8785 form (members in lexicographic order, no whitespace),
// the hash in hex, the previous signature in standard base64, signed_at
// in RFC 3339 UTC seconds, and a type tag so the signature cannot be
// mistaken for one over anything else.
func (d *AuditDigest) SigningBytes() []byte {
	var b bytes.Buffer
	u := func(name string, v uint64) {
		b.WriteString(`"` + name + `":`)
		b.WriteString(strconv.FormatUint(v, 10))
		b.WriteByte(',')
	}
	s := func(name, v string) {
		appendJSONString(&b, name)
		b.WriteByte(':')
		appendJSONString(&b, v)
		b.WriteByte(',')
	}
	b.WriteByte('{')
	u("chain", uint64(d.Chain))
	u("first_seq", d.FirstSeq)
	s("key_id", d.KeyID)
	s("last_hash", d.LastHash.String())
	u("last_seq", d.LastSeq)
	u("number", d.Number)
	s("prev_signature", base64.StdEncoding.EncodeToString(d.PrevSignature))
	s("signed_at", d.SignedAt.UTC().Format(time.RFC3339))
	s("type", "firmbridge.audit.digest")
	b.WriteString(`"v":` + strconv.Itoa(AuditDigestVersion) + `}`)
	return b.Bytes()
}

// Sign signs the digest with key, recorded under keyID.
func (d *AuditDigest) Sign(key ed25519.PrivateKey, keyID string) {
	d.KeyID = keyID
	d.Signature = ed25519.Sign(key, d.SigningBytes())
}

// AuditKeys are the public keys digests may be signed with, by key id.
// Old keys stay in the set after a rotation so old digests still verify.
type AuditKeys map[string]ed25519.PublicKey

// VerifySignature checks the digest's signature with the key its KeyID names.
func (d *AuditDigest) VerifySignature(keys AuditKeys) error {
	pub, ok := keys[d.KeyID]
	if !ok {
		return fmt.Errorf("signed with key %q, which is not among the %d trusted keys", d.KeyID, len(keys))
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, d.SigningBytes(), d.Signature) {
		return fmt.Errorf("signature does not verify with key %q", d.KeyID)
	}
	return nil
}

// Kinds of chain failure the verifier reports.
const (
	TamperAltered         = "altered"          // an event's content or hash was changed
	TamperRemoved         = "removed"          // sequence numbers are missing
	TamperInserted        = "inserted"         // a duplicate or extra sequence number
	TamperReordered       = "reordered"        // events are out of their sealed order
	TamperDigestSignature = "digest_signature" // a digest does not verify with a trusted key
	TamperDigestHash      = "digest_hash"      // a digest's last hash is not the chain's
	TamperDigestChain     = "digest_chain"     // a digest does not follow the one before
	TamperUnsigned        = "unsigned"         // events no digest covers (only when required)
)

// ChainFailure is the first point at which a chain does not verify.
type ChainFailure struct {
	Seq     uint64 `json:"seq"`              // the first sequence number affected
	Kind    string `json:"kind"`             // one of the Tamper* kinds
	Digest  uint64 `json:"digest,omitempty"` // the digest involved, if any
	Message string `json:"message"`
}

func (f *ChainFailure) Error() string {
	return fmt.Sprintf("seq %d: %s: %s", f.Seq, f.Kind, f.Message)
}

// ChainReport says what a verification covered and where it failed.
type ChainReport struct {
	Chain      uint32 `json:"chain"`
	FirstSeq   uint64 `json:"first_seq"` // the first event checked
	LastSeq    uint64 `json:"last_seq"`  // the last event checked (below FirstSeq when none)
	Events     int    `json:"events"`
	Digests    int    `json:"digests"`      // digests verified, the anchor included
	Anchor     uint64 `json:"anchor"`       // digest number verification started from; 0: the chain's beginning
	SignedUpTo uint64 `json:"signed_up_to"` // the last sequence number a verified digest covers
	// Unsigned counts the events after the newest digest: hash-chained but
	// not yet signed (the sealer signs every few seconds).
	Unsigned int           `json:"unsigned"`
	Failure  *ChainFailure `json:"failure,omitempty"`
}

// OK reports whether the chain verified.
func (r *ChainReport) OK() bool { return r.Failure == nil }

// RequireSigned turns unsigned events into a failure, for a verification
// run when the sealer is stopped and its shutdown digest covers everything.
func (r *ChainReport) RequireSigned() {
	if r.Failure == nil && r.Unsigned > 0 {
		r.Failure = &ChainFailure{Seq: r.SignedUpTo + 1, Kind: TamperUnsigned,
			Message: fmt.Sprintf("%d events after seq %d are covered by no digest: appended after the last seal, or the newest digests were removed", r.Unsigned, r.SignedUpTo)}
	}
}

// ChainInput is what a chain is verified from.
type ChainInput struct {
	Chain uint32
	// Anchor is the digest just before Events, trusted once its signature
	// verifies; nil starts at the chain's beginning.
	Anchor *AuditDigest
	// Events in sequence order, from Anchor.LastSeq+1 (or 1).
	Events iter.Seq[SealedEvent]
	// Digests after Anchor, in number order.
	Digests iter.Seq[AuditDigest]
	Keys    AuditKeys
}

// reorderWindow bounds how far ahead the verifier looks for the event that
// belongs where the chain broke, to tell a reordering from an alteration.
const reorderWindow = 16

// VerifyChain checks a chain and reports the first sequence number at which
// an event was altered, removed, inserted or reordered, or a digest was
// broken. It is pure: everything it needs is in in, and it reads events and
// digests once, in order, so a chain of any length streams through it.
func VerifyChain(in ChainInput) ChainReport {
	v := chainVerifier{in: in, expect: 1, hash: GenesisHash, nextDigest: 1}
	v.report = ChainReport{Chain: in.Chain}
	events, digests := in.Events, in.Digests
	if events == nil {
		events = func(func(SealedEvent) bool) {}
	}
	if digests == nil {
		digests = func(func(AuditDigest) bool) {}
	}
	var stopE, stopD func()
	v.pullEvent, stopE = iter.Pull(events)
	defer stopE()
	v.pullDigest, stopD = iter.Pull(digests)
	defer stopD()
	if in.Anchor != nil {
		if f := v.anchor(in.Anchor); f != nil {
			return v.fail(f)
		}
	}
	v.report.FirstSeq = v.expect
	if f := v.run(); f != nil {
		return v.fail(f)
	}
	return v.done()
}

type chainVerifier struct {
	in         ChainInput
	report     ChainReport
	pullEvent  func() (SealedEvent, bool)
	pullDigest func() (AuditDigest, bool)
	ahead      []SealedEvent // events read but not yet checked
	digest     *AuditDigest  // a digest read but not yet checked
	expect     uint64        // the next sequence number
	hash       ChainHash     // the hash of event expect-1
	prevSig    []byte        // the signature of the last verified digest
	prevLast   uint64        // the last seq of the last verified digest
	nextDigest uint64        // the number the next digest must have
}

func (v *chainVerifier) fail(f *ChainFailure) ChainReport {
	v.report.Failure = f
	return v.done()
}

func (v *chainVerifier) done() ChainReport {
	v.report.LastSeq = v.expect - 1
	if v.report.Failure == nil && v.report.LastSeq > v.report.SignedUpTo {
		v.report.Unsigned = int(v.report.LastSeq - v.report.SignedUpTo)
	}
	return v.report
}

func (v *chainVerifier) peek(i int) (SealedEvent, bool) {
	for len(v.ahead) <= i {
		ev, ok := v.pullEvent()
		if !ok {
			return SealedEvent{}, false
		}
		v.ahead = append(v.ahead, ev)
	}
	return v.ahead[i], true
}

func (v *chainVerifier) peekDigest() (*AuditDigest, bool) {
	if v.digest == nil {
		d, ok := v.pullDigest()
		if !ok {
			return nil, false
		}
		v.digest = &d
	}
	return v.digest, true
}

func (v *chainVerifier) anchor(a *AuditDigest) *ChainFailure {
	if a.Chain != v.in.Chain {
		return &ChainFailure{Seq: a.FirstSeq, Kind: TamperDigestChain, Digest: a.Number,
			Message: fmt.Sprintf("anchor digest %d belongs to chain %d, not %d", a.Number, a.Chain, v.in.Chain)}
	}
	if err := a.VerifySignature(v.in.Keys); err != nil {
		return &ChainFailure{Seq: a.FirstSeq, Kind: TamperDigestSignature, Digest: a.Number, Message: fmt.Sprintf("anchor digest %d: %v", a.Number, err)}
	}
	v.expect, v.hash = a.LastSeq+1, a.LastHash
	v.prevSig, v.prevLast, v.nextDigest = a.Signature, a.LastSeq, a.Number+1
	v.report.Anchor, v.report.SignedUpTo = a.Number, a.LastSeq
	v.report.Digests++
	return nil
}

func (v *chainVerifier) run() *ChainFailure {
	for {
		// Digests whose range ends before the next event are due now, when
		// v.hash is the hash of their last event.
		for {
			d, ok := v.peekDigest()
			if !ok || d.LastSeq >= v.expect {
				break
			}
			v.digest = nil
			if f := v.checkDigest(d); f != nil {
				return f
			}
		}
		ev, ok := v.peek(0)
		if !ok {
			break
		}
		if f := v.checkEvent(ev); f != nil {
			return f
		}
		v.ahead = v.ahead[1:]
	}
	// The events ended: every digest left must end where they did.
	for {
		d, ok := v.peekDigest()
		if !ok {
			return nil
		}
		v.digest = nil
		if d.LastSeq >= v.expect {
			if err := d.VerifySignature(v.in.Keys); err != nil {
				return &ChainFailure{Seq: d.FirstSeq, Kind: TamperDigestSignature, Digest: d.Number, Message: fmt.Sprintf("digest %d: %v", d.Number, err)}
			}
			return &ChainFailure{Seq: v.expect, Kind: TamperRemoved, Digest: d.Number,
				Message: fmt.Sprintf("digest %d covers events up to seq %d, but the chain ends at seq %d: %s missing", d.Number, d.LastSeq, v.expect-1, seqRange(v.expect, d.LastSeq))}
		}
		if f := v.checkDigest(d); f != nil {
			return f
		}
	}
}

// seqRange names a run of missing events: "event 7 is" or "events 7 to 9 are".
func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("event %d is", from)
	}
	return fmt.Sprintf("events %d to %d are", from, to)
}

func pronoun(from, to uint64) string {
	if from == to {
		return "it"
	}
	return "them"
}

func (v *chainVerifier) checkEvent(ev SealedEvent) *ChainFailure {
	if ev.Chain != v.in.Chain {
		return &ChainFailure{Seq: ev.Seq, Kind: TamperInserted, Message: fmt.Sprintf("an event of chain %d is among the events of chain %d", ev.Chain, v.in.Chain)}
	}
	switch {
	case ev.Seq == 0:
		return &ChainFailure{Seq: 0, Kind: TamperInserted, Message: "an event carries sequence number 0; chains start at 1"}
	case ev.Seq < v.expect && ev.Seq+1 == v.expect && v.report.Events > 0:
		return &ChainFailure{Seq: ev.Seq, Kind: TamperInserted, Message: fmt.Sprintf("two events carry sequence number %d", ev.Seq)}
	case ev.Seq < v.expect:
		return &ChainFailure{Seq: ev.Seq, Kind: TamperReordered, Message: fmt.Sprintf("event %d comes after event %d", ev.Seq, v.expect-1)}
	case ev.Seq > v.expect:
		for i := 1; i <= reorderWindow; i++ {
			if other, ok := v.peek(i); ok && other.Seq == v.expect {
				return &ChainFailure{Seq: v.expect, Kind: TamperReordered, Message: fmt.Sprintf("event %d comes after event %d", v.expect, ev.Seq)}
			}
		}
		if d, ok := v.peekDigest(); ok && d.LastSeq >= v.expect {
			return &ChainFailure{Seq: v.expect, Kind: TamperRemoved, Digest: d.Number,
				Message: fmt.Sprintf("%s missing (digest %d covers %s)", seqRange(v.expect, ev.Seq-1), d.Number, pronoun(v.expect, ev.Seq-1))}
		}
		return &ChainFailure{Seq: ev.Seq, Kind: TamperInserted,
			Message: fmt.Sprintf("event %d follows event %d and no digest covers the gap: an extra event, or unsigned events removed", ev.Seq, v.expect-1)}
	}
	if next, ok := v.peek(1); ok && next.Seq == ev.Seq {
		return &ChainFailure{Seq: ev.Seq, Kind: TamperInserted, Message: fmt.Sprintf("two events carry sequence number %d", ev.Seq)}
	}
	h := NextChainHash(v.hash, ev.Canonical)
	if h != ev.Hash {
		// An event sealed at this position further on means the order was
		// changed, not the content.
		for i := 1; i <= reorderWindow; i++ {
			other, ok := v.peek(i)
			if !ok {
				break
			}
			if oh := NextChainHash(v.hash, other.Canonical); oh == ev.Hash || oh == other.Hash {
				return &ChainFailure{Seq: ev.Seq, Kind: TamperReordered,
					Message: fmt.Sprintf("the event stored as seq %d was sealed as seq %d: events were swapped or moved", other.Seq, ev.Seq)}
			}
		}
		return &ChainFailure{Seq: ev.Seq, Kind: TamperAltered,
			Message: fmt.Sprintf("event %d does not hash to its sealed hash: its content or hash was changed (or event %d was changed and its hash recomputed)", ev.Seq, ev.Seq-1)}
	}
	sealed, err := DecodeCanonicalAccessEvent(ev.Canonical)
	if err != nil {
		return &ChainFailure{Seq: ev.Seq, Kind: TamperAltered, Message: fmt.Sprintf("event %d: %v", ev.Seq, err)}
	}
	if ev.Event != nil {
		if field := diffStoredEvent(sealed, ev.Event); field != "" {
			return &ChainFailure{Seq: ev.Seq, Kind: TamperAltered,
				Message: fmt.Sprintf("event %d: stored column %s differs from the sealed event", ev.Seq, field)}
		}
	}
	v.hash = h
	v.expect++
	v.report.Events++
	return nil
}

// diffStoredEvent names the first field in which the stored columns differ
// from the sealed event. occurred_at is stored in whole seconds.
func diffStoredEvent(sealed, stored *AccessEvent) string {
	switch {
	case sealed.EventID != stored.EventID:
		return "event_id"
	case sealed.RequestID != stored.RequestID:
		return "request_id"
	case !sealed.OccurredAt.Truncate(time.Second).Equal(stored.OccurredAt.Truncate(time.Second)):
		return "occurred_at"
	case sealed.Subject != stored.Subject:
		return "subject"
	case sealed.Role != stored.Role:
		return "role"
	case sealed.Org != stored.Org:
		return "org"
	case sealed.USCC != stored.USCC:
		return "uscc"
	case !slices.Equal(sealed.Scopes, stored.Scopes) && (len(sealed.Scopes) > 0 || len(stored.Scopes) > 0):
		return "scopes"
	case sealed.Purpose != stored.Purpose:
		return "purpose"
	case sealed.ConsentID != stored.ConsentID:
		return "consent_id"
	case sealed.Decision != stored.Decision:
		return "decision"
	case sealed.Reason != stored.Reason:
		return "reason"
	case sealed.Status != stored.Status:
		return "status"
	case sealed.ClientAddr != stored.ClientAddr:
		return "client_addr"
	case sealed.Method != stored.Method:
		return "method"
	case sealed.Path != stored.Path:
		return "path"
	}
	return ""
}

func (v *chainVerifier) checkDigest(d *AuditDigest) *ChainFailure {
	fail := func(kind, format string, args ...any) *ChainFailure {
		return &ChainFailure{Seq: d.FirstSeq, Kind: kind, Digest: d.Number, Message: fmt.Sprintf("digest %d: ", d.Number) + fmt.Sprintf(format, args...)}
	}
	if d.Chain != v.in.Chain {
		return fail(TamperDigestChain, "belongs to chain %d", d.Chain)
	}
	if err := d.VerifySignature(v.in.Keys); err != nil {
		return fail(TamperDigestSignature, "%v", err)
	}
	switch {
	case d.Number != v.nextDigest:
		return fail(TamperDigestChain, "follows digest %d: digests %d to %d are missing or out of order", v.nextDigest-1, v.nextDigest, d.Number-1)
	case !bytes.Equal(d.PrevSignature, v.prevSig):
		return fail(TamperDigestChain, "does not carry the signature of digest %d", d.Number-1)
	case d.FirstSeq != v.prevLast+1:
		return fail(TamperDigestChain, "starts at seq %d, but digest %d ended at seq %d", d.FirstSeq, d.Number-1, v.prevLast)
	case d.LastSeq != v.expect-1:
		return fail(TamperDigestChain, "ends at seq %d, before the events already checked (up to %d)", d.LastSeq, v.expect-1)
	case d.LastHash != v.hash:
		return fail(TamperDigestHash, "signed last hash %s, but events %d to %d hash to %s: they were rewritten", d.LastHash, d.FirstSeq, d.LastSeq, v.hash)
	}
	v.prevSig, v.prevLast, v.nextDigest = d.Signature, d.LastSeq, d.Number+1
	v.report.SignedUpTo = d.LastSeq
	v.report.Digests++
	return nil
}

// AuditChainReader reads sealed chains; schema.AuditStore implements it and
// the API verifies through it.
type AuditChainReader interface {
	// AuditChains lists the chains that have events or digests.
	AuditChains(ctx context.Context) ([]uint32, error)
	// VerifyAuditChain verifies events from..to of a chain (to 0: to the
	// end), starting from the nearest digest before from.
	VerifyAuditChain(ctx context.Context, chain uint32, from, to uint64, keys AuditKeys) (*ChainReport, error)
}

// AuditDigestClock tells how current the signed digests are.
type AuditDigestClock interface {
	// StalestDigestAt returns, over every chain, the oldest of the chains'
	// newest digest times; ok is false when there is no digest at all.
	StalestDigestAt(ctx context.Context) (at time.Time, ok bool, err error)
}

// Audit export: JSON lines, one object each, "type" first.
//
//	{"type":"digest","anchor":true,"digest":{...}}   the digest verification starts from (only when the export starts mid-chain)
//	{"type":"digest","digest":{...}}                 digests in number order
//	{"type":"event","chain":0,"seq":1,"offset":17,"hash":"<hex>","canonical":"<the canonical bytes as a JSON string>"}
//
// Digest fields are those of AuditDigest: hashes in hex, signatures in
// standard base64, signed_at in RFC 3339. Canonical bytes are valid UTF-8
// JSON, so as a JSON string they come back byte for byte.
type auditExportLine struct {
	Type      string       `json:"type"`
	Anchor    bool         `json:"anchor,omitempty"`
	Digest    *AuditDigest `json:"digest,omitempty"`
	Chain     *uint32      `json:"chain,omitempty"`
	Seq       uint64       `json:"seq,omitempty"`
	Offset    int64        `json:"offset,omitempty"`
	Hash      *ChainHash   `json:"hash,omitempty"`
	Canonical *string      `json:"canonical,omitempty"`
}

// AuditExportFormat names the export format; `firmbridge audit export`
// writes it in a first line {"type":"export","format":...}.
const AuditExportFormat = "firmbridge.audit.export.v1"

var exportHeader = struct {
	Type   string `json:"type"`
	Format string `json:"format"`
}{"export", AuditExportFormat}

// AuditExportWriter writes an audit export.
type AuditExportWriter struct {
	w       *bufio.Writer
	started bool
}

// NewAuditExportWriter starts an export on w.
func NewAuditExportWriter(w io.Writer) *AuditExportWriter {
	return &AuditExportWriter{w: bufio.NewWriterSize(w, 1<<16)}
}

func (x *AuditExportWriter) line(v any) error {
	if !x.started {
		x.started = true
		if err := x.write(exportHeader); err != nil {
			return err
		}
	}
	return x.write(v)
}

func (x *AuditExportWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	b = append(b, '\n')
	if _, err := x.w.Write(b); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// Digest writes a digest; anchor marks the one verification starts from.
func (x *AuditExportWriter) Digest(d *AuditDigest, anchor bool) error {
	return x.line(auditExportLine{Type: "digest", Anchor: anchor, Digest: d})
}

// Event writes a sealed event.
func (x *AuditExportWriter) Event(ev *SealedEvent) error {
	if !utf8.Valid(ev.Canonical) {
		return fmt.Errorf("audit export: event %d of chain %d: canonical bytes are not UTF-8 (the stored event was tampered with)", ev.Seq, ev.Chain)
	}
	chain, hash, canon := ev.Chain, ev.Hash, string(ev.Canonical)
	return x.line(auditExportLine{Type: "event", Chain: &chain, Seq: ev.Seq, Offset: ev.SourceOffset, Hash: &hash, Canonical: &canon})
}

// Close flushes what was written.
func (x *AuditExportWriter) Close() error {
	if !x.started {
		// An empty export still says what it is.
		x.started = true
		if err := x.write(exportHeader); err != nil {
			return err
		}
	}
	if err := x.w.Flush(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// AuditExport is an export read back, by chain.
type AuditExport struct {
	Chains []uint32 // in ascending order
	Anchor map[uint32]*AuditDigest
	Events map[uint32][]SealedEvent
	Digest map[uint32][]AuditDigest
}

// Input returns what VerifyChain needs for one chain of the export. Events
// and digests keep the file's order: a reordered file is a finding.
func (x *AuditExport) Input(chain uint32, keys AuditKeys) ChainInput {
	return ChainInput{Chain: chain, Anchor: x.Anchor[chain], Events: slices.Values(x.Events[chain]),
		Digests: slices.Values(x.Digest[chain]), Keys: keys}
}

// ReadAuditExport reads an export written by AuditExportWriter.
func ReadAuditExport(r io.Reader) (*AuditExport, error) {
	x := &AuditExport{Anchor: map[uint32]*AuditDigest{}, Events: map[uint32][]SealedEvent{}, Digest: map[uint32][]AuditDigest{}}
	seen := map[uint32]bool{}
	note := func(c uint32) {
		if !seen[c] {
			seen[c] = true
			x.Chains = append(x.Chains, c)
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var l struct {
			auditExportLine
			Format string `json:"format"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("audit export line %d: %w", n, err)
		}
		switch l.Type {
		case "export":
			if l.Format != AuditExportFormat {
				return nil, fmt.Errorf("audit export line %d: format %q, want %q", n, l.Format, AuditExportFormat)
			}
		case "digest":
			if l.Digest == nil {
				return nil, fmt.Errorf("audit export line %d: digest line without a digest", n)
			}
			note(l.Digest.Chain)
			if l.Anchor {
				if x.Anchor[l.Digest.Chain] != nil {
					return nil, fmt.Errorf("audit export line %d: a second anchor for chain %d", n, l.Digest.Chain)
				}
				x.Anchor[l.Digest.Chain] = l.Digest
				continue
			}
			x.Digest[l.Digest.Chain] = append(x.Digest[l.Digest.Chain], *l.Digest)
		case "event":
			if l.Chain == nil || l.Hash == nil || l.Canonical == nil {
				return nil, fmt.Errorf("audit export line %d: an event needs chain, seq, hash and canonical", n)
			}
			note(*l.Chain)
			x.Events[*l.Chain] = append(x.Events[*l.Chain], SealedEvent{Chain: *l.Chain, Seq: l.Seq, Hash: *l.Hash,
				Canonical: []byte(*l.Canonical), SourceOffset: l.Offset})
		default:
			return nil, fmt.Errorf("audit export line %d: unknown type %q", n, l.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit export: %w", err)
	}
	slices.Sort(x.Chains)
	return x, nil
}
