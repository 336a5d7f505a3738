package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/schollz/progressbar/v3"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/schema"
)

// bench audit's data: a synthetic but self-consistent sealed access log.
//
// Institutions are banks whose sizes follow a power law (the largest has
// about 500 times the events of the smallest), firms are drawn by a
// milder power law of popularity, and consents join them: each bank holds
// consents of its own firms, for a purpose and scopes, granted directly or
// through a consent request, some revoked, most expired by now. Events come
// at the rate of an hourly intensity over the years (growing linearly to
// 2.5 times the first month's rate, business hours in China, quiet
// weekends), and each event is decided against the consents at its time: a
// bank reading a firm under a live consent is allowed; reading without
// one, after a revocation or an expiry, for another purpose or scope, too
// fast or with a bad USCC is denied with the API's reason code. Firms see
// their consents and access log, regulators use the audit routes, and
// callers with bad tokens fail authentication.
//
// Every event is sealed as the sealer seals it: canonical bytes, chain
// (the partition its key hashes to), dense sequence numbers in time order
// and hash = SHA-256(previous hash ‖ canonical), and each chain gets a
// signed digest per block, so the generated database verifies with
// `firmbridge audit verify` and the verify route. Only the Kafka offsets
// are made up (offset = seq - 1).

// auditBenchConfig sizes the generated log.
type auditBenchConfig struct {
	events       int
	banks, firms int
	regulators   int
	years        int
	chains       int
	block        int
	seed         int64
	end          time.Time // events lie in [end - years, end)
}

type auditBenchConsent struct {
	id, uscc, grantee, purpose string
	scopes                     []string
	requested                  bool // came from a consent request: requested, then approved
	created, validFrom         time.Time
	expiresAt, revokedAt       time.Time // revokedAt zero: never revoked
}

func (c *auditBenchConsent) activeAt(t time.Time) bool {
	return !t.Before(c.validFrom) && t.Before(c.expiresAt) && (c.revokedAt.IsZero() || t.Before(c.revokedAt))
}

func (c *auditBenchConsent) status(end time.Time) string {
	switch {
	case !c.revokedAt.IsZero():
		return firmbridge.ConsentRevoked
	case !c.expiresAt.After(end):
		return firmbridge.ConsentExpired
	}
	return firmbridge.ConsentActive
}

// auditBenchModel is everything events are drawn from.
type auditBenchModel struct {
	cfg        auditBenchConfig
	start      time.Time
	hourCum    []float64 // cumulative intensity by hour from start
	banks      []string
	bankCum    []float64
	firms      []string
	firmCum    []float64
	regulators []string
	consents   []auditBenchConsent
	byBank     [][]int32 // consents of each bank, by valid_from
	revoked    [][]int32 // revoked consents of each bank, by revoked_at
}

// Reason shares, of a bank's requests for firm data. The rest is allowed.
var auditBenchDataMix = []struct {
	reason string
	share  float64
}{
	{"consent_required", 0.085},
	{"consent_revoked", 0.012},
	{"consent_expired", 0.025},
	{"purpose_not_granted", 0.015},
	{firmbridge.WithheldScopeNotGranted, 0.010},
	{"invalid_uscc", 0.004},
	{"rate_limited", 0.012},
	{"audit_stalled", 0.0003},
}

var auditBenchScopeSets = [][]string{
	{firmbridge.ScopeTax},
	{firmbridge.ScopeTax, firmbridge.ScopeOperations},
	{firmbridge.ScopeOperations, firmbridge.ScopePatent, firmbridge.ScopeTax},
	{firmbridge.ScopePatent},
}

// diurnal is the relative rate of each hour of the day in China (UTC+8).
var auditBenchDiurnal = [24]float64{0.03, 0.02, 0.02, 0.02, 0.02, 0.03, 0.08, 0.3, 0.7, 1, 1, 0.95, 0.55, 0.75, 1, 1, 0.95, 0.85, 0.55, 0.35, 0.25, 0.15, 0.08, 0.05}

func powerCum(n int, exp float64) []float64 {
	cum := make([]float64, n)
	s := 0.0
	for i := range n {
		s += 1 / math.Pow(float64(i+1), exp)
		cum[i] = s
	}
	return cum
}

// pickCum draws an index with the weights whose running sums cum holds.
func pickCum(cum []float64, rng *rand.Rand) int {
	x := rng.Float64() * cum[len(cum)-1]
	return min(sort.SearchFloat64s(cum, x), len(cum)-1)
}

func randHex(rng *rand.Rand, n int) string {
	out := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			out[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(out)
}

func newAuditBenchModel(cfg auditBenchConfig) *auditBenchModel {
	m := &auditBenchModel{cfg: cfg, start: cfg.end.AddDate(-cfg.years, 0, 0)}
	rng := rand.New(rand.NewPCG(uint64(cfg.seed), 0xa0d17))
	hours := int(cfg.end.Sub(m.start) / time.Hour)
	m.hourCum = make([]float64, hours)
	china := time.FixedZone("CST", 8*3600)
	s := 0.0
	for h := range hours {
		local := m.start.Add(time.Duration(h) * time.Hour).In(china)
		w := auditBenchDiurnal[local.Hour()] * (0.4 + 0.6*float64(h)/float64(hours))
		switch local.Weekday() {
		case time.Saturday:
			w *= 0.25
		case time.Sunday:
			w *= 0.15
		}
		s += w
		m.hourCum[h] = s
	}
	for i := range cfg.banks {
		m.banks = append(m.banks, fmt.Sprintf("BANK-%04d", i+1))
	}
	m.bankCum = powerCum(cfg.banks, 1.1)
	// Valid, distinct USCCs in synth's cities (synth.Firms also wants
	// distinct names, of which there are fewer than 100,000).
	seen := make(map[string]bool, cfg.firms)
	for len(m.firms) < cfg.firms {
		u := synth.MakeUSCC(rng, "91", synth.Cities[rng.IntN(len(synth.Cities))].Division)
		if !seen[u] {
			seen[u] = true
			m.firms = append(m.firms, u)
		}
	}
	m.firmCum = powerCum(cfg.firms, 0.6)
	for i := range cfg.regulators {
		m.regulators = append(m.regulators, fmt.Sprintf("REG-%02d", i+1))
	}

	// Consents: about 1.5 per firm, from a year before the first event on.
	purposes := []string{firmbridge.PurposeCreditAssessment, firmbridge.PurposeLoanMonitoring, firmbridge.PurposeRiskReview}
	n := cfg.firms * 3 / 2
	from := m.start.AddDate(-1, 0, 0)
	span := cfg.end.Sub(from)
	m.consents = make([]auditBenchConsent, 0, n)
	m.byBank = make([][]int32, cfg.banks)
	m.revoked = make([][]int32, cfg.banks)
	for range n {
		b := pickCum(m.bankCum, rng)
		c := auditBenchConsent{id: randHex(rng, 16), uscc: m.firms[pickCum(m.firmCum, rng)], grantee: m.banks[b]}
		switch x := rng.Float64(); {
		case x < 0.55:
			c.purpose = purposes[0]
		case x < 0.85:
			c.purpose = purposes[1]
		default:
			c.purpose = purposes[2]
		}
		c.scopes = auditBenchScopeSets[min(int(rng.ExpFloat64()*0.9), len(auditBenchScopeSets)-1)]
		c.validFrom = from.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Second)
		c.created = c.validFrom
		if c.requested = rng.IntN(10) < 3; c.requested {
			c.created = c.validFrom.Add(-time.Duration(rng.Int64N(int64(5 * 24 * time.Hour)))).Truncate(time.Second)
		}
		longest := firmbridge.MaxConsentDuration[c.purpose]
		if rng.IntN(10) < 3 {
			longest = time.Duration(float64(longest) * (0.2 + 0.8*rng.Float64()))
		}
		c.expiresAt = c.validFrom.Add(longest).Truncate(time.Second)
		if last := minTime(c.expiresAt, cfg.end); rng.IntN(100) < 12 && last.After(c.validFrom) {
			c.revokedAt = c.validFrom.Add(time.Duration(rng.Int64N(int64(last.Sub(c.validFrom))))).Truncate(time.Second)
		}
		m.byBank[b] = append(m.byBank[b], int32(len(m.consents)))
		if !c.revokedAt.IsZero() {
			m.revoked[b] = append(m.revoked[b], int32(len(m.consents)))
		}
		m.consents = append(m.consents, c)
	}
	for b := range m.byBank {
		slices.SortFunc(m.byBank[b], func(x, y int32) int { return m.consents[x].validFrom.Compare(m.consents[y].validFrom) })
		slices.SortFunc(m.revoked[b], func(x, y int32) int { return m.consents[x].revokedAt.Compare(m.consents[y].revokedAt) })
	}
	return m
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// timeOf draws the time of event i of n: the inverse of the cumulative
// intensity at (i + jitter) / n, so blocks of consecutive events cover
// consecutive stretches of time.
func (m *auditBenchModel) timeOf(i, n int, rng *rand.Rand) time.Time {
	total := m.hourCum[len(m.hourCum)-1]
	x := (float64(i) + rng.Float64()) / float64(n) * total
	h := min(sort.SearchFloat64s(m.hourCum, x), len(m.hourCum)-1)
	return m.start.Add(time.Duration(h)*time.Hour + time.Duration(rng.Int64N(int64(time.Hour))))
}

// consentAt draws a consent of bank b whose state at t satisfies ok,
// among those granted in the two years before t, or nil.
func (m *auditBenchModel) consentAt(b int, t time.Time, rng *rand.Rand, ok func(*auditBenchConsent) bool) *auditBenchConsent {
	list := m.byBank[b]
	hi := sort.Search(len(list), func(i int) bool { return m.consents[list[i]].validFrom.After(t) })
	lo := sort.Search(len(list), func(i int) bool { return !m.consents[list[i]].validFrom.Before(t.AddDate(-2, 0, 0)) })
	if hi <= lo {
		return nil
	}
	for range 12 {
		c := &m.consents[list[lo+rng.IntN(hi-lo)]]
		if ok(c) {
			return c
		}
	}
	return nil
}

// revokedBefore draws a consent of bank b revoked in the 60 days before t, or nil.
func (m *auditBenchModel) revokedBefore(b int, t time.Time, rng *rand.Rand) *auditBenchConsent {
	list := m.revoked[b]
	hi := sort.Search(len(list), func(i int) bool { return m.consents[list[i]].revokedAt.After(t) })
	lo := sort.Search(len(list), func(i int) bool { return !m.consents[list[i]].revokedAt.Before(t.AddDate(0, 0, -60)) })
	if hi <= lo {
		return nil
	}
	return &m.consents[list[lo+rng.IntN(hi-lo)]]
}

var auditBenchDataPaths = []struct {
	suffix, scope string
	share         float64
}{{"/profile", "", 0.72}, {"/tax", firmbridge.ScopeTax, 0.12}, {"/operations", firmbridge.ScopeOperations, 0.07}, {"/patents", firmbridge.ScopePatent, 0.04}, {"batch", "", 0.05}}

// event draws the event of time t.
func (m *auditBenchModel) event(t time.Time, rng *rand.Rand) *firmbridge.AccessEvent {
	e := &firmbridge.AccessEvent{EventID: randHex(rng, 16), RequestID: randHex(rng, 12), OccurredAt: t.UTC(),
		Method: "GET", Decision: firmbridge.DecisionAllow, Status: 200, Scopes: []string{}}
	switch x := rng.Float64(); {
	case x < 0.02: // a failed authentication: nobody identified
		e.Decision, e.Status = firmbridge.DecisionDeny, 401
		e.Reason = []string{"token_expired", "token_expired", "token_invalid", "token_missing", "token_signature_invalid"}[rng.IntN(5)]
		e.ClientAddr = fmt.Sprintf("203.0.%d.%d", rng.IntN(256), 1+rng.IntN(254))
		e.Path = "/v1/firms/" + m.firms[pickCum(m.firmCum, rng)] + "/profile"
	case x < 0.035: // a regulator
		r := rng.IntN(len(m.regulators))
		e.Role, e.Org = firmbridge.RoleRegulator, m.regulators[r]
		e.Subject, e.ClientAddr = "inspector-"+strconv.Itoa(rng.IntN(8))+"@"+e.Org, fmt.Sprintf("172.16.%d.%d", r, 10+rng.IntN(20))
		e.Path = []string{"/v1/audit/events", "/v1/audit/events", "/v1/audit/stats", "/v1/audit/alerts", "/v1/audit/export", "/v1/audit/verify"}[rng.IntN(6)]
	case x < 0.11: // a firm looks after its consents
		e.Role = firmbridge.RoleEnterprise
		e.Org = m.firms[pickCum(m.firmCum, rng)]
		e.USCC, e.Subject = e.Org, "admin@"+e.Org
		e.ClientAddr = fmt.Sprintf("100.%d.%d.%d", 64+rng.IntN(64), rng.IntN(256), 1+rng.IntN(254))
		switch y := rng.IntN(20); {
		case y < 9:
			e.Path = "/v1/consents"
		case y < 15:
			e.Path = "/v1/access-log"
		case y < 17:
			e.Path = "/v1/consent-requests"
		case y < 19:
			e.Method, e.Path, e.Status = "POST", "/v1/consents", 201
			e.Purpose, e.Scopes = firmbridge.PurposeCreditAssessment, []string{firmbridge.ScopeTax}
			e.ConsentID = randHex(rng, 16)
		default:
			e.Method, e.Path = "POST", "/v1/consents/"+randHex(rng, 16)+"/revoke"
		}
	default:
		m.bankEvent(e, t, rng)
	}
	return e
}

func (m *auditBenchModel) bankEvent(e *firmbridge.AccessEvent, t time.Time, rng *rand.Rand) {
	b := pickCum(m.bankCum, rng)
	e.Role, e.Org = firmbridge.RoleBank, m.banks[b]
	e.Subject = "svc-" + strconv.Itoa(rng.IntN(6)) + "@" + e.Org
	e.ClientAddr = fmt.Sprintf("10.%d.%d.%d", b/250, b%250, 10+rng.IntN(16))
	if rng.IntN(100) < 6 { // listings
		e.Path = []string{"/v1/consents", "/v1/consent-requests", "/v1/access-log"}[rng.IntN(3)]
		return
	}
	x := rng.Float64()
	p := auditBenchDataPaths[len(auditBenchDataPaths)-1]
	for _, c := range auditBenchDataPaths {
		if x < c.share {
			p = c
			break
		}
		x -= c.share
	}
	path := func(uscc string) string {
		if p.suffix == "batch" {
			e.Method = "POST"
			return "/v1/profiles/batch"
		}
		return "/v1/firms/" + uscc + p.suffix
	}
	deny := func(reason string, status int) {
		e.Decision, e.Reason, e.Status, e.Scopes, e.ConsentID = firmbridge.DecisionDeny, reason, status, []string{}, ""
	}
	live := func(c *auditBenchConsent) bool { return c.activeAt(t) }
	reason := ""
	y := rng.Float64()
	for _, r := range auditBenchDataMix {
		if y < r.share {
			reason = r.reason
			break
		}
		y -= r.share
	}
	var c *auditBenchConsent
	switch reason {
	case "":
		if c = m.consentAt(b, t, rng, live); c == nil {
			reason = "consent_required"
		}
	case "consent_revoked":
		if c = m.revokedBefore(b, t, rng); c == nil {
			reason = "consent_required"
		}
	case "consent_expired":
		if c = m.consentAt(b, t, rng, func(c *auditBenchConsent) bool { return !c.expiresAt.After(t) && c.revokedAt.IsZero() }); c == nil {
			reason = "consent_required"
		}
	case "purpose_not_granted", firmbridge.WithheldScopeNotGranted:
		if c = m.consentAt(b, t, rng, live); c == nil {
			reason = "consent_required"
		}
	}
	uscc := m.firms[pickCum(m.firmCum, rng)]
	purpose := firmbridge.PurposeCreditAssessment
	if c != nil {
		uscc, purpose = c.uscc, c.purpose
	}
	e.USCC, e.Purpose, e.Path = uscc, purpose, path(uscc)
	switch reason {
	case "":
		e.ConsentID, e.Scopes = c.id, slices.Clone(c.scopes)
		if p.scope != "" && !slices.Contains(c.scopes, p.scope) {
			// Banks ask for what their consent covers: a detail listing
			// outside it is read as the profile.
			e.Path = "/v1/firms/" + uscc + "/profile"
		}
	case firmbridge.WithheldScopeNotGranted:
		scope := firmbridge.ScopePatent
		if slices.Contains(c.scopes, scope) {
			scope = firmbridge.ScopeOperations
		}
		if slices.Contains(c.scopes, scope) {
			scope = firmbridge.ScopeTax
		}
		e.Path = "/v1/firms/" + uscc + map[string]string{firmbridge.ScopePatent: "/patents", firmbridge.ScopeOperations: "/operations", firmbridge.ScopeTax: "/tax"}[scope]
		deny(reason, 403)
	case "purpose_not_granted":
		e.Purpose = firmbridge.PurposeRiskReview
		if c.purpose == e.Purpose {
			e.Purpose = firmbridge.PurposeLoanMonitoring
		}
		deny(reason, 403)
	case "invalid_uscc":
		e.USCC = strings.ToLower(uscc[:17]) + "I"
		e.Path = path(e.USCC)
		deny(reason, 400)
	case "rate_limited":
		deny(reason, 429)
	case "audit_stalled":
		deny(reason, 503)
	default:
		deny(reason, 403)
	}
}

// auditBenchChain is the partition the event's Kafka key hashes to, as the audit
// log keys it (the firm, else the institution).
func auditBenchChain(e *firmbridge.AccessEvent, chains int) uint32 {
	key := e.USCC
	if key == "" {
		key = e.Org
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return h.Sum32() % uint32(chains)
}

// auditBenchBlock is a run of consecutive events, sealed in order.
type auditBenchBlock struct {
	index   int
	events  []firmbridge.SealedEvent
	digests []firmbridge.AuditDigest
	bytes   int64 // canonical bytes
}

// generate draws block k: events k*block up to the next block, in time
// order, with their canonical bytes and chains.
func (m *auditBenchModel) generate(k int) (*auditBenchBlock, error) {
	n := m.cfg.events
	first := k * m.cfg.block
	last := min(first+m.cfg.block, n)
	rng := rand.New(rand.NewPCG(uint64(m.cfg.seed), uint64(k)+1))
	b := &auditBenchBlock{index: k, events: make([]firmbridge.SealedEvent, 0, last-first)}
	for i := first; i < last; i++ {
		e := m.event(m.timeOf(i, n, rng), rng)
		b.events = append(b.events, firmbridge.SealedEvent{Event: e, Chain: auditBenchChain(e, m.cfg.chains)})
	}
	slices.SortStableFunc(b.events, func(x, y firmbridge.SealedEvent) int { return x.Event.OccurredAt.Compare(y.Event.OccurredAt) })
	for i := range b.events {
		canon, err := firmbridge.CanonicalAccessEvent(b.events[i].Event)
		if err != nil {
			return nil, fmt.Errorf("bench audit: event %d of block %d: %w", i, k, err)
		}
		b.events[i].Canonical = canon
		b.bytes += int64(len(canon))
	}
	return b, nil
}

// auditBenchKey is the digest key of a generated log: derived from the
// seed, so that a database kept with --keep verifies when reused.
func auditBenchKey(seed int64) *api.SigningKey {
	s := sha256.Sum256([]byte("firmbridge bench audit digest key " + strconv.FormatInt(seed, 10)))
	return api.NewSigningKey(ed25519.NewKeyFromSeed(s[:]))
}

// auditBenchSealer chains blocks in order and signs a digest of every
// chain after each block.
type auditBenchSealer struct {
	key    ed25519.PrivateKey
	keyID  string
	states []firmbridge.ChainState
	prev   []*firmbridge.AuditDigest
}

func newAuditBenchSealer(chains int, key ed25519.PrivateKey, keyID string) *auditBenchSealer {
	s := &auditBenchSealer{key: key, keyID: keyID, prev: make([]*firmbridge.AuditDigest, chains)}
	for c := range chains {
		s.states = append(s.states, firmbridge.NewChainState(uint32(c)))
	}
	return s
}

func (s *auditBenchSealer) seal(b *auditBenchBlock) {
	var newest time.Time
	for i := range b.events {
		ev := &b.events[i]
		st := &s.states[ev.Chain]
		st.LastSeq++
		st.LastHash = firmbridge.NextChainHash(st.LastHash, ev.Canonical)
		st.NextOffset = int64(st.LastSeq)
		ev.Seq, ev.Hash, ev.SourceOffset = st.LastSeq, st.LastHash, int64(st.LastSeq-1)
		newest = ev.Event.OccurredAt
	}
	for c := range s.states {
		d := firmbridge.NextAuditDigest(s.prev[c], s.states[c], newest.Add(time.Second))
		d.Sign(s.key, s.keyID)
		b.digests = append(b.digests, d)
		s.prev[c] = &b.digests[len(b.digests)-1]
	}
}

const auditBenchEventColumns = "chain, seq, hash, canonical, source_offset, event_id, request_id, occurred_at, subject, role, org, uscc, " +
	"scopes, purpose, consent_id, decision, reason, status, client_addr, method, path"

// insertAuditBlock writes a block's events in one insert, column by
// column, then its digests.
func insertAuditBlock(ctx context.Context, conn driver.Conn, b *auditBenchBlock) error {
	n := len(b.events)
	chain, seq, offset := make([]uint32, n), make([]uint64, n), make([]uint64, n)
	times, status, scopes := make([]time.Time, n), make([]uint16, n), make([][]string, n)
	str := func() []string { return make([]string, n) }
	hash, canon, eventID, reqID, subject, role, org, uscc := str(), str(), str(), str(), str(), str(), str(), str()
	purpose, consentID, decision, reason, addr, method, path := str(), str(), str(), str(), str(), str(), str()
	for i := range b.events {
		ev := &b.events[i]
		e := ev.Event
		chain[i], seq[i], offset[i], hash[i], canon[i] = ev.Chain, ev.Seq, uint64(ev.SourceOffset), ev.Hash.String(), string(ev.Canonical)
		eventID[i], reqID[i], times[i], subject[i], role[i], org[i], uscc[i] = e.EventID, e.RequestID, e.OccurredAt, e.Subject, e.Role, e.Org, e.USCC
		scopes[i], purpose[i], consentID[i], decision[i], reason[i], status[i] = e.Scopes, e.Purpose, e.ConsentID, e.Decision, e.Reason, uint16(e.Status)
		addr[i], method[i], path[i] = e.ClientAddr, e.Method, e.Path
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO audit_events ("+auditBenchEventColumns+")")
	if err != nil {
		return fmt.Errorf("bench audit: insert block %d: %w", b.index, err)
	}
	cols := []any{chain, seq, hash, canon, offset, eventID, reqID, times, subject, role, org, uscc,
		scopes, purpose, consentID, decision, reason, status, addr, method, path}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("bench audit: insert block %d: column %d: %w", b.index, i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("bench audit: insert block %d (%d events): %w", b.index, n, err)
	}
	return insertAuditDigests(ctx, conn, b.digests)
}

func insertAuditDigests(ctx context.Context, conn driver.Conn, ds []firmbridge.AuditDigest) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO audit_digests (chain, number, first_seq, last_seq, last_hash, prev_signature, signed_at, key_id, signature)")
	if err != nil {
		return fmt.Errorf("bench audit: insert digests: %w", err)
	}
	for _, d := range ds {
		if err := batch.Append(d.Chain, d.Number, d.FirstSeq, d.LastSeq, d.LastHash.String(), base64.StdEncoding.EncodeToString(d.PrevSignature), d.SignedAt.UTC(), d.KeyID, base64.StdEncoding.EncodeToString(d.Signature)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("bench audit: insert digests: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("bench audit: insert digests: %w", err)
	}
	return nil
}

// auditBenchLoad is what loading took.
type auditBenchLoad struct {
	events, blocks int64
	bytes          int64 // canonical bytes
	took           time.Duration
	chains         []firmbridge.ChainState
}

// loadAuditBench generates, seals and inserts every block: generators in
// parallel, the sealer in block order, inserters in parallel. At most
// inFlight blocks exist at a time, so memory stays bounded.
func loadAuditBench(ctx context.Context, store *schema.Store, m *auditBenchModel, generators, inserters int,
	key ed25519.PrivateKey, keyID string, bar *progressbar.ProgressBar) (*auditBenchLoad, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	blocks := (m.cfg.events + m.cfg.block - 1) / m.cfg.block
	inFlight := make(chan struct{}, generators+inserters+2)
	generated := make(chan *auditBenchBlock, generators)
	sealed := make(chan *auditBenchBlock, 1)
	var next atomic.Int64
	var out auditBenchLoad
	start := time.Now()
	fail := func(err error) { cancel(err) }

	var gens sync.WaitGroup
	for range generators {
		gens.Add(1)
		go func() {
			defer gens.Done()
			for {
				select {
				case inFlight <- struct{}{}:
				case <-ctx.Done():
					return
				}
				k := int(next.Add(1) - 1)
				if k >= blocks {
					<-inFlight
					return
				}
				b, err := m.generate(k)
				if err != nil {
					fail(err)
					return
				}
				select {
				case generated <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { gens.Wait(); close(generated) }()

	sealer := newAuditBenchSealer(m.cfg.chains, key, keyID)
	go func() {
		defer close(sealed)
		pending := map[int]*auditBenchBlock{}
		want := 0
		for b := range generated {
			pending[b.index] = b
			for pending[want] != nil {
				b := pending[want]
				delete(pending, want)
				sealer.seal(b)
				select {
				case sealed <- b:
				case <-ctx.Done():
					return
				}
				want++
			}
		}
	}()

	var ins sync.WaitGroup
	for range inserters {
		ins.Add(1)
		go func() {
			defer ins.Done()
			for b := range sealed {
				if ctx.Err() != nil {
					continue
				}
				if err := insertAuditBlock(ctx, store.Conn(), b); err != nil {
					fail(err)
					continue
				}
				atomic.AddInt64(&out.events, int64(len(b.events)))
				atomic.AddInt64(&out.bytes, b.bytes)
				atomic.AddInt64(&out.blocks, 1)
				_ = bar.Add(len(b.events))
				<-inFlight
			}
		}()
	}
	ins.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return nil, err
	}
	_ = bar.Finish()
	out.took = time.Since(start)
	if out.events != int64(m.cfg.events) {
		return nil, fmt.Errorf("bench audit: %d of %d events inserted", out.events, m.cfg.events)
	}
	audits := schema.AuditStore{Store: store}
	for _, st := range sealer.states {
		if err := audits.SaveChainState(ctx, st); err != nil {
			return nil, err
		}
	}
	out.chains = sealer.states
	return &out, nil
}

// insertAuditBenchConsents stores the model's consents in their final
// state and their receipts (granted, or requested then approved; revoked;
// expired). Receipts carry a placeholder instead of a JWS: no audit query
// reads it.
func insertAuditBenchConsents(ctx context.Context, conn driver.Conn, m *auditBenchModel) (consents, receipts int, err error) {
	cb, err := conn.PrepareBatch(ctx, "INSERT INTO consents (id, uscc, grantee, scopes, purpose, status, valid_from, expires_at, data_from, created_at, updated_at, updated_by, version)")
	if err != nil {
		return 0, 0, fmt.Errorf("bench audit: insert consents: %w", err)
	}
	rb, err := conn.PrepareBatch(ctx, "INSERT INTO consent_receipts (receipt_id, consent_id, uscc, grantee, event, seq, issued_at, jws, hash, prev, consent_version, state, written_at, version)")
	if err != nil {
		_ = cb.Abort()
		return 0, 0, fmt.Errorf("bench audit: insert receipts: %w", err)
	}
	abort := func(err error) (int, int, error) {
		_ = cb.Abort()
		_ = rb.Abort()
		return 0, 0, fmt.Errorf("bench audit: insert consents: %w", err)
	}
	end := m.cfg.end
	for i := range m.consents {
		c := &m.consents[i]
		status := c.status(end)
		updated := c.validFrom
		switch status {
		case firmbridge.ConsentRevoked:
			updated = c.revokedAt
		case firmbridge.ConsentExpired:
			updated = c.expiresAt
		}
		version := firmbridge.VersionOf(updated)
		if err := cb.Append(c.id, c.uscc, c.grantee, c.scopes, c.purpose, status, c.validFrom, c.expiresAt, nil, c.created, updated,
			"admin@"+c.uscc, version); err != nil {
			return abort(err)
		}
		type receipt struct {
			event string
			at    time.Time
		}
		rs := []receipt{{"granted", c.validFrom}}
		if c.requested {
			rs = []receipt{{"requested", c.created}, {"approved", c.validFrom}}
		}
		switch status {
		case firmbridge.ConsentRevoked:
			rs = append(rs, receipt{"revoked", c.revokedAt})
		case firmbridge.ConsentExpired:
			rs = append(rs, receipt{"expired", c.expiresAt})
		}
		for j, r := range rs {
			if err := rb.Append(c.id+"-"+strconv.Itoa(j+1), c.id, c.uscc, c.grantee, r.event, uint32(j+1), r.at, "bench", "", "",
				firmbridge.VersionOf(r.at), "published", r.at, firmbridge.VersionOf(r.at)); err != nil {
				return abort(err)
			}
			receipts++
		}
	}
	if err := cb.Send(); err != nil {
		_ = rb.Abort()
		return 0, 0, fmt.Errorf("bench audit: insert consents: %w", err)
	}
	if err := rb.Send(); err != nil {
		return 0, 0, fmt.Errorf("bench audit: insert receipts: %w", err)
	}
	return len(m.consents), receipts, nil
}
