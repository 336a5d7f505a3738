package schema

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"iter"
	"reflect"
	"time"

	"github.com/firmbridge/firmbridge"
)

// AuditStore keeps the sealed audit log (migration 0008): events in their
// hash chains, the sealer's checkpoint per chain, and signed digests.
// Reads of the chain for verification drop exact duplicate rows (a batch
// the sealer wrote twice, after a crash) and keep anything else, so a
// forged row stays visible to the verifier (see rangeEvents).
type AuditStore struct{ *Store }

var (
	_ firmbridge.AuditChainReader = AuditStore{}
	_ firmbridge.AuditDigestClock = AuditStore{}
)

const (
	auditEventColumns = "chain, seq, hash, canonical, source_offset, event_id, request_id, occurred_at, subject, role, org, uscc, " +
		"scopes, purpose, consent_id, decision, reason, status, client_addr, method, path"
	auditDigestColumns = "chain, number, first_seq, last_seq, last_hash, prev_signature, signed_at, key_id, signature"
)

// AppendSealed stores a batch of sealed events, then the chain's checkpoint
// after them. A crash in between leaves events beyond the checkpoint; the
// sealer resumes from the checkpoint, seals the same Kafka records to the
// same sequence numbers and hashes, and the rows written again replace
// themselves.
func (s AuditStore) AppendSealed(ctx context.Context, state firmbridge.ChainState, events []firmbridge.SealedEvent) error {
	if err := s.InsertSealedEvents(ctx, events); err != nil {
		return err
	}
	return s.SaveChainState(ctx, state)
}

// InsertSealedEvents writes sealed events in one batch.
func (s AuditStore) InsertSealedEvents(ctx context.Context, events []firmbridge.SealedEvent) error {
	if len(events) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO audit_events ("+auditEventColumns+")")
	if err != nil {
		return fmt.Errorf("insert audit events: prepare: %w", err)
	}
	for i := range events {
		ev := &events[i]
		e := ev.Event
		if e == nil {
			if e, err = firmbridge.DecodeCanonicalAccessEvent(ev.Canonical); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("insert audit event %d of chain %d: %w", ev.Seq, ev.Chain, err)
			}
		}
		scopes := e.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		if err := batch.Append(ev.Chain, ev.Seq, ev.Hash.String(), string(ev.Canonical), uint64(max(ev.SourceOffset, 0)),
			e.EventID, e.RequestID, e.OccurredAt.UTC(), e.Subject, e.Role, e.Org, e.USCC, scopes, e.Purpose, e.ConsentID,
			e.Decision, e.Reason, uint16(e.Status), e.ClientAddr, e.Method, e.Path); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert audit event %d of chain %d: %w", ev.Seq, ev.Chain, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d audit events: %w", len(events), err)
	}
	return nil
}

// SaveChainState writes a chain's checkpoint.
func (s AuditStore) SaveChainState(ctx context.Context, st firmbridge.ChainState) error {
	if st.NextOffset < 0 {
		return fmt.Errorf("save audit chain %d state: no offset read yet", st.Chain)
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO audit_chain_state (chain, last_seq, last_hash, next_offset, updated_at)")
	if err != nil {
		return fmt.Errorf("save audit chain %d state: %w", st.Chain, err)
	}
	if err := batch.Append(st.Chain, st.LastSeq, st.LastHash.String(), uint64(st.NextOffset), time.Now().UTC()); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("save audit chain %d state: %w", st.Chain, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("save audit chain %d state: %w", st.Chain, err)
	}
	return nil
}

// ChainHead returns a chain's checkpoint (NewChainState when it has none)
// and its newest digest (nil when it has none).
func (s AuditStore) ChainHead(ctx context.Context, chain uint32) (firmbridge.ChainState, *firmbridge.AuditDigest, error) {
	st := firmbridge.NewChainState(chain)
	var (
		lastSeq, nextOffset, n uint64
		lastHash               string
	)
	if err := s.conn.QueryRow(ctx, `SELECT argMax(last_seq, next_offset), argMax(last_hash, next_offset), max(next_offset), count()
		FROM audit_chain_state WHERE chain = ?`, chain).Scan(&lastSeq, &lastHash, &nextOffset, &n); err != nil {
		return st, nil, fmt.Errorf("read audit chain %d state: %w", chain, err)
	}
	if n > 0 {
		h, err := firmbridge.ParseChainHash(lastHash)
		if err != nil {
			return st, nil, fmt.Errorf("read audit chain %d state: %w", chain, err)
		}
		st.LastSeq, st.LastHash, st.NextOffset = lastSeq, h, int64(nextOffset)
	}
	ds, err := s.digests(ctx, "chain = ? ORDER BY number DESC LIMIT 1", chain)
	if err != nil {
		return st, nil, err
	}
	if len(ds) == 0 {
		return st, nil, nil
	}
	return st, &ds[0], nil
}

// WriteDigest stores a signed digest. Writing the same digest again is
// harmless: (chain, number) is its key.
func (s AuditStore) WriteDigest(ctx context.Context, d *firmbridge.AuditDigest) error {
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO audit_digests ("+auditDigestColumns+")")
	if err != nil {
		return fmt.Errorf("write audit digest %d of chain %d: %w", d.Number, d.Chain, err)
	}
	if err := batch.Append(d.Chain, d.Number, d.FirstSeq, d.LastSeq, d.LastHash.String(), base64.StdEncoding.EncodeToString(d.PrevSignature),
		d.SignedAt.UTC(), d.KeyID, base64.StdEncoding.EncodeToString(d.Signature)); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("write audit digest %d of chain %d: %w", d.Number, d.Chain, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("write audit digest %d of chain %d: %w", d.Number, d.Chain, err)
	}
	return nil
}

func (s AuditStore) digests(ctx context.Context, whereOrder string, args ...any) ([]firmbridge.AuditDigest, error) {
	var out []firmbridge.AuditDigest
	var err error
	for d := range s.digestSeq(ctx, &err, whereOrder, args...) {
		out = append(out, d)
	}
	return out, err
}

// digestSeq streams digests; a failure stops the stream and lands in *errp.
func (s AuditStore) digestSeq(ctx context.Context, errp *error, whereOrder string, args ...any) iter.Seq[firmbridge.AuditDigest] {
	return func(yield func(firmbridge.AuditDigest) bool) {
		rows, err := s.conn.Query(ctx, "SELECT "+auditDigestColumns+" FROM audit_digests FINAL WHERE "+whereOrder, args...)
		if err != nil {
			*errp = fmt.Errorf("read audit digests: %w", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var d firmbridge.AuditDigest
			var lastHash, prevSig, sig string
			if err := rows.Scan(&d.Chain, &d.Number, &d.FirstSeq, &d.LastSeq, &lastHash, &prevSig, &d.SignedAt, &d.KeyID, &sig); err != nil {
				*errp = fmt.Errorf("read audit digests: %w", err)
				return
			}
			d.SignedAt = d.SignedAt.UTC()
			// A column that does not decode is a finding for the verifier
			// (the signature will not match), not a read error.
			d.LastHash, _ = firmbridge.ParseChainHash(lastHash)
			d.PrevSignature, _ = base64.StdEncoding.DecodeString(prevSig)
			d.Signature, _ = base64.StdEncoding.DecodeString(sig)
			if !yield(d) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			*errp = fmt.Errorf("read audit digests: %w", err)
		}
	}
}

// eventSeq streams sealed events; a failure stops the stream and lands in
// *errp. It reads without FINAL: see rangeEvents.
func (s AuditStore) eventSeq(ctx context.Context, errp *error, whereOrder string, args ...any) iter.Seq[firmbridge.SealedEvent] {
	return func(yield func(firmbridge.SealedEvent) bool) {
		rows, err := s.conn.Query(ctx, "SELECT "+auditEventColumns+" FROM audit_events "+whereOrder, args...)
		if err != nil {
			*errp = fmt.Errorf("read audit events: %w", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var ev firmbridge.SealedEvent
			var e firmbridge.AccessEvent
			var hash, canonical string
			var offset uint64
			var status uint16
			if err := rows.Scan(&ev.Chain, &ev.Seq, &hash, &canonical, &offset, &e.EventID, &e.RequestID, &e.OccurredAt, &e.Subject,
				&e.Role, &e.Org, &e.USCC, &e.Scopes, &e.Purpose, &e.ConsentID, &e.Decision, &e.Reason, &status, &e.ClientAddr,
				&e.Method, &e.Path); err != nil {
				*errp = fmt.Errorf("read audit events: %w", err)
				return
			}
			// An unreadable hash stays zero: the verifier reports the event altered.
			ev.Hash, _ = firmbridge.ParseChainHash(hash)
			ev.Canonical, ev.SourceOffset = []byte(canonical), int64(offset)
			e.OccurredAt, e.Status = e.OccurredAt.UTC(), int(status)
			ev.Event = &e
			if !yield(ev) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			*errp = fmt.Errorf("read audit events: %w", err)
		}
	}
}

// chainRange is the part of a chain that verifying events from..to reads:
// from the newest digest before from (the anchor) to the first digest that
// covers to, or to the end of the chain.
type chainRange struct {
	anchor     *firmbridge.AuditDigest
	afterSeq   uint64 // events after this seq
	upToSeq    uint64 // and up to this one; 0: no bound
	afterDig   uint64 // digests after this number
	upToDigest uint64 // and up to this one; 0: no bound
}

func (s AuditStore) chainRange(ctx context.Context, chain uint32, from, to uint64) (chainRange, error) {
	var r chainRange
	if from > 1 {
		ds, err := s.digests(ctx, "chain = ? AND last_seq < ? ORDER BY number DESC LIMIT 1", chain, from)
		if err != nil {
			return r, err
		}
		if len(ds) > 0 {
			r.anchor = &ds[0]
			r.afterSeq, r.afterDig = ds[0].LastSeq, ds[0].Number
		}
	}
	if to > 0 {
		ds, err := s.digests(ctx, "chain = ? AND last_seq >= ? AND number > ? ORDER BY number LIMIT 1", chain, to, r.afterDig)
		if err != nil {
			return r, err
		}
		if len(ds) > 0 {
			r.upToSeq, r.upToDigest = ds[0].LastSeq, ds[0].Number
		} else {
			r.upToSeq = to // beyond the newest digest: the unsigned tail up to to
		}
	}
	return r, nil
}

// verifyWindow is how many sequence numbers one verification query reads.
const verifyWindow = 100_000

// rangeEvents streams a chain's events in seq order for verification and
// export. audit_events is ordered for the regulator's queries, not by
// (chain, seq), so FINAL over a range merges every part of the table at
// once: at 10M events it ran out of memory (docs/BENCHMARKS.md). Instead
// the range is read in windows of verifyWindow seqs without FINAL, and a
// row identical to the one before it (what a re-seal after a crash writes)
// is dropped here; a forged row differs somewhere and still reaches the
// verifier, which reports it.
func (s AuditStore) rangeEvents(ctx context.Context, r chainRange, chain uint32, errp *error) iter.Seq[firmbridge.SealedEvent] {
	return func(yield func(firmbridge.SealedEvent) bool) {
		last := r.upToSeq
		if last == 0 {
			if err := s.conn.QueryRow(ctx, "SELECT max(seq) FROM audit_events PREWHERE chain = ?", chain).Scan(&last); err != nil {
				*errp = fmt.Errorf("read audit events: %w", err)
				return
			}
		}
		var prev *firmbridge.SealedEvent
		for lo := r.afterSeq; lo < last; lo += verifyWindow {
			hi := min(lo+verifyWindow, last)
			for ev := range s.eventSeq(ctx, errp, "PREWHERE chain = ? AND seq > ? AND seq <= ? ORDER BY seq, event_id, hash, canonical", chain, lo, hi) {
				if prev != nil && sameSealedRow(prev, &ev) {
					continue
				}
				if !yield(ev) {
					return
				}
				prev = &ev
			}
			if *errp != nil {
				return
			}
		}
	}
}

// sameSealedRow reports whether two rows are the same row written twice.
func sameSealedRow(a, b *firmbridge.SealedEvent) bool {
	return a.Chain == b.Chain && a.Seq == b.Seq && a.Hash == b.Hash && a.SourceOffset == b.SourceOffset &&
		bytes.Equal(a.Canonical, b.Canonical) && reflect.DeepEqual(a.Event, b.Event)
}

func (s AuditStore) rangeDigests(ctx context.Context, r chainRange, chain uint32, errp *error) iter.Seq[firmbridge.AuditDigest] {
	if r.upToDigest > 0 {
		return s.digestSeq(ctx, errp, "chain = ? AND number > ? AND number <= ? ORDER BY number", chain, r.afterDig, r.upToDigest)
	}
	return s.digestSeq(ctx, errp, "chain = ? AND number > ? ORDER BY number", chain, r.afterDig)
}

// VerifyAuditChain implements firmbridge.AuditChainReader: it verifies
// events from..to (to 0: to the end) of a chain, streaming them from
// ClickHouse, from the newest digest before from. It returns an error only
// when the tables cannot be read; tampering is in the report.
func (s AuditStore) VerifyAuditChain(ctx context.Context, chain uint32, from, to uint64, keys firmbridge.AuditKeys) (*firmbridge.ChainReport, error) {
	r, err := s.chainRange(ctx, chain, from, to)
	if err != nil {
		return nil, err
	}
	var evErr, dErr error
	report := firmbridge.VerifyChain(firmbridge.ChainInput{Chain: chain, Anchor: r.anchor, Keys: keys,
		Events: s.rangeEvents(ctx, r, chain, &evErr), Digests: s.rangeDigests(ctx, r, chain, &dErr)})
	// A stream cut short by an error looks like removed events: the error wins.
	if evErr != nil || dErr != nil {
		return nil, fmt.Errorf("verify audit chain %d: %w", chain, firstErr(evErr, dErr))
	}
	return &report, nil
}

// Verify is VerifyAuditChain under a shorter name.
func (s AuditStore) Verify(ctx context.Context, chain uint32, from, to uint64, keys firmbridge.AuditKeys) (*firmbridge.ChainReport, error) {
	return s.VerifyAuditChain(ctx, chain, from, to, keys)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Export writes events from..to of a chain (to 0: to the end), with the
// digests that verify them, to an audit export: the anchor digest, the
// digests in number order, then the events in sequence order.
func (s AuditStore) Export(ctx context.Context, x *firmbridge.AuditExportWriter, chain uint32, from, to uint64) (events int, err error) {
	r, err := s.chainRange(ctx, chain, from, to)
	if err != nil {
		return 0, err
	}
	if r.anchor != nil {
		if err := x.Digest(r.anchor, true); err != nil {
			return 0, err
		}
	}
	var readErr error
	for d := range s.rangeDigests(ctx, r, chain, &readErr) {
		if err := x.Digest(&d, false); err != nil {
			return 0, err
		}
	}
	if readErr != nil {
		return 0, fmt.Errorf("export audit chain %d: %w", chain, readErr)
	}
	for ev := range s.rangeEvents(ctx, r, chain, &readErr) {
		if err := x.Event(&ev); err != nil {
			return events, err
		}
		events++
	}
	if readErr != nil {
		return events, fmt.Errorf("export audit chain %d: %w", chain, readErr)
	}
	return events, nil
}

// AuditChains implements firmbridge.AuditChainReader.
func (s AuditStore) AuditChains(ctx context.Context) ([]uint32, error) {
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT chain FROM (
		SELECT chain FROM audit_digests UNION ALL SELECT chain FROM audit_chain_state UNION ALL SELECT DISTINCT chain FROM audit_events
	) ORDER BY chain`)
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var c uint32
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("list audit chains: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	return out, nil
}

// StalestDigestAt implements firmbridge.AuditDigestClock.
func (s AuditStore) StalestDigestAt(ctx context.Context) (time.Time, bool, error) {
	var at time.Time
	var chains uint64
	if err := s.conn.QueryRow(ctx, `SELECT min(newest), count() FROM (SELECT chain, max(signed_at) AS newest FROM audit_digests GROUP BY chain)`).
		Scan(&at, &chains); err != nil {
		return time.Time{}, false, fmt.Errorf("read newest audit digests: %w", err)
	}
	if chains == 0 {
		return time.Time{}, false, nil
	}
	return at.UTC(), true, nil
}
