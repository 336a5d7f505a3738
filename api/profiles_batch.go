package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// MaxBatchFirms bounds the firms of one POST /v1/profiles/batch.
const MaxBatchFirms = 500

// maxBatchInput bounds one entry of usccs as echoed back and logged.
const maxBatchInput = 64

// BatchRequest is the body of POST /v1/profiles/batch. Scopes, when given,
// limits the sections read to those scopes.
type BatchRequest struct {
	Purpose string   `json:"purpose"`
	USCCs   []string `json:"usccs"`
	Scopes  []string `json:"scopes,omitempty"`
}

// Batch decisions.
const (
	BatchAllow = "allow"
	BatchDeny  = "deny"
)

// BatchResult is the decision for one firm: its profile when allowed, the
// stable code and a message when denied. Input is the entry as sent;
// USCC its normalized form ("" when it is not a USCC).
type BatchResult struct {
	Input    string              `json:"input"`
	USCC     string              `json:"uscc,omitempty"`
	Decision string              `json:"decision"`
	Code     string              `json:"code,omitempty"`
	Detail   string              `json:"detail,omitempty"`
	Profile  *firmbridge.Profile `json:"profile,omitempty"`
}

// BatchResponse answers a batch: one result per distinct firm, in the
// order first sent.
type BatchResponse struct {
	Purpose string        `json:"purpose"`
	Allowed int           `json:"allowed"`
	Denied  int           `json:"denied"`
	Results []BatchResult `json:"results"`
}

func (s *Server) handleProfileBatch(c *gin.Context) {
	ev := s.newEvent(c)
	var req BatchRequest
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		msg := "the body must be one JSON object {\"purpose\": ..., \"usccs\": [...], \"scopes\": [...]}"
		if err != nil {
			msg += ": " + err.Error()
		}
		s.respond(c, ev, 0, nil, &firmbridge.Error{Kind: firmbridge.EINVALID, Code: "invalid_body", Message: msg})
		return
	}
	ev.Purpose, ev.Scopes = req.Purpose, req.Scopes
	if err := checkBatch(req); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	if err := onlyParams(c.Request.URL.Query()); err != nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	id, _ := firmbridge.IdentityFrom(c.Request.Context())
	resp, events, err := s.ProfileBatch(c.Request.Context(), id, req, ev)
	if err != nil && events == nil {
		s.respond(c, ev, 0, nil, err)
		return
	}
	for _, e := range events {
		if s.Metrics != nil && e.Decision == firmbridge.DecisionDeny {
			s.Metrics.Denials.WithLabelValues(e.Reason).Inc()
		}
	}
	if auditErr := s.recordAll(c.Request.Context(), events); auditErr != nil {
		s.logger().Error("audit log write failed; failing closed", "request_id", ev.RequestID, "events", len(events), "err", auditErr)
		writeError(c, s.logger(), firmbridge.Errorf(firmbridge.EUNAVAILABLE, "audit_unavailable",
			"the accesses could not be recorded, so no data is served; retry later"))
		return
	}
	if err != nil {
		writeError(c, s.logger(), err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

func checkBatch(req BatchRequest) error {
	if err := checkPurpose(req.Purpose); err != nil {
		return err
	}
	switch {
	case len(req.USCCs) == 0:
		return invalidParam("usccs", "usccs must list at least one firm")
	case len(req.USCCs) > MaxBatchFirms:
		return invalidParam("usccs", "usccs lists %d firms; at most %d per batch", len(req.USCCs), MaxBatchFirms)
	}
	for i, sc := range req.Scopes {
		if !firmbridge.ValidScope(sc) {
			return invalidParam("scopes", "unknown scope %q; scopes are tax, patent, operations", sc)
		}
		if slices.Contains(req.Scopes[:i], sc) {
			return invalidParam("scopes", "scope %s is listed twice", sc)
		}
	}
	if req.Scopes != nil && len(req.Scopes) == 0 {
		return invalidParam("scopes", "scopes, when given, must list at least one scope")
	}
	return nil
}

// ProfileBatch decides for each firm of req whether the bank may read it
// and reads the profiles allowed, with one consent query and one profile
// read for the whole batch. It returns one access event per decision,
// made from base; the caller records them all before answering. When the
// read fails, the events are returned with the error (every decision then
// says the error) so that the refusal is recorded too.
func (s *Server) ProfileBatch(ctx context.Context, id firmbridge.Identity, req BatchRequest, base *firmbridge.AccessEvent) (*BatchResponse, []*firmbridge.AccessEvent, error) {
	if id.Role != firmbridge.RoleBank {
		return nil, nil, firmbridge.Errorf(firmbridge.EFORBIDDEN, "role_not_allowed", "only banks read firm profiles")
	}
	if err := checkTokenScopes(id, req.Scopes); err != nil {
		return nil, nil, err
	}
	consents, err := s.Consents.ConsentsForGrantee(ctx, id.Org, "")
	if err != nil {
		return nil, nil, err
	}
	byFirm := map[string][]*firmbridge.Consent{}
	for _, c := range consents { // newest first, kept so per firm
		byFirm[c.USCC] = append(byFirm[c.USCC], c)
	}
	now := s.now()
	resp := &BatchResponse{Purpose: req.Purpose, Results: []BatchResult{}}
	var events []*firmbridge.AccessEvent
	var reads []firmbridge.ProfileRequest
	granted := map[string]*firmbridge.Consent{}
	seenInput, seenUSCC := map[string]bool{}, map[string]bool{}
	deny := func(r BatchResult, ev *firmbridge.AccessEvent, err error) {
		r.Decision, r.Code, r.Detail = BatchDeny, firmbridge.ErrorCode(err), firmbridge.ErrorMessage(err)
		ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionDeny, r.Code, StatusOf(err)
		resp.Results = append(resp.Results, r)
	}
	for _, input := range req.USCCs {
		shown := input
		if len(shown) > maxBatchInput {
			shown = shown[:maxBatchInput]
		}
		ev := firmEvent(base, req.Purpose)
		uscc, err := normalizeUSCC(input)
		if err != nil {
			if seenInput[input] {
				continue
			}
			seenInput[input] = true
			ev.USCC = shown
			events = append(events, ev)
			deny(BatchResult{Input: shown}, ev, err)
			continue
		}
		if seenUSCC[uscc] {
			continue // one decision per firm, however it was written
		}
		seenUSCC[uscc] = true
		ev.USCC = uscc
		events = append(events, ev)
		r := BatchResult{Input: shown, USCC: uscc}
		consent, err := chooseConsent(byFirm[uscc], id.Org, uscc, req.Purpose, "", now)
		if err != nil {
			deny(r, ev, err)
			continue
		}
		ev.ConsentID = consent.ID
		scopes := consent.Scopes
		if req.Scopes != nil {
			scopes = intersect(consent.Scopes, req.Scopes)
		}
		if len(scopes) == 0 {
			deny(r, ev, firmbridge.Errorf(firmbridge.EFORBIDDEN, firmbridge.WithheldScopeNotGranted,
				"the consent %s of firm %s covers none of the scopes asked for", consent.ID, uscc))
			continue
		}
		if scopes, err = tokenNarrowed(id, consent, scopes); err != nil {
			deny(r, ev, err)
			continue
		}
		ev.Scopes = scopes
		granted[uscc] = consent
		reads = append(reads, firmbridge.ProfileRequest{USCC: uscc, Scopes: scopes, DataFrom: firmbridge.DataFloor(consent.DataFrom)})
		r.Decision = BatchAllow
		ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionAllow, "", http.StatusOK
		resp.Results = append(resp.Results, r)
	}

	var profiles map[string]*firmbridge.Profile
	if len(reads) > 0 {
		profiles, err = s.Profiles.ReadProfiles(ctx, reads)
		if err != nil {
			for _, ev := range events {
				if ev.Decision == firmbridge.DecisionAllow {
					ev.Decision, ev.Reason, ev.Status = firmbridge.DecisionDeny, firmbridge.ErrorCode(err), StatusOf(err)
				}
			}
			return nil, events, err
		}
	}
	for i := range resp.Results {
		r := &resp.Results[i]
		if r.Decision != BatchAllow {
			resp.Denied++
			continue
		}
		resp.Allowed++
		r.Profile = finishProfile(profiles[r.USCC], r.USCC, req.Purpose, granted[r.USCC], id.Scopes, req.Scopes)
	}
	return resp, events, nil
}

func intersect(have, want []string) []string {
	var out []string
	for _, s := range have {
		if slices.Contains(want, s) {
			out = append(out, s)
		}
	}
	return out
}

// firmEvent copies the request's event for one firm's decision, with an
// id of its own.
func firmEvent(base *firmbridge.AccessEvent, purpose string) *firmbridge.AccessEvent {
	ev := *base
	ev.EventID, ev.Purpose, ev.Scopes = newEventID(), purpose, nil
	return &ev
}

func newEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// batchAuditLog is an audit log that can write many events at once; one
// that cannot is written to concurrently (the Kafka writer gathers
// concurrent writes into one produce request).
type batchAuditLog interface {
	RecordBatch(ctx context.Context, events []*firmbridge.AccessEvent) error
}

// auditParallelism bounds the concurrent writes of one batch's events.
const auditParallelism = 64

// recordAll durably records every event, or returns an error when any
// could not be written.
func (s *Server) recordAll(ctx context.Context, events []*firmbridge.AccessEvent) error {
	if b, ok := s.Audit.(batchAuditLog); ok {
		if err := b.RecordBatch(ctx, events); err != nil {
			return fmt.Errorf("record %d access events: %w", len(events), err)
		}
		return nil
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, auditParallelism)
	for _, ev := range events {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.Audit.Record(ctx, ev); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("record access events: %d of %d failed: %w", len(errs), len(events), errors.Join(errs...))
	}
	return nil
}
