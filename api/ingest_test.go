package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
)

const providerOrg = "PROV-TAX-BUREAU-35"

// fakePublisher records batches, or fails with err.
type fakePublisher struct {
	mu      sync.Mutex
	err     error
	batches int
}

func (p *fakePublisher) PublishRaw(context.Context, string, []firmbridge.Envelope, firmbridge.RawOrigin) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.batches++
	return p.err
}

// testLog sends the server's log to the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type ingestEnv struct {
	handler http.Handler
	tokens  *api.Tokens
	audit   *memAudit
	kafka   kafka.Config // with a scratch TopicPrefix; zero without Kafka
}

// newIngestEnv builds a server whose raw topics are scratch topics on the
// real Kafka (their names prefixed, so nothing else reads them), or, when
// raw is set, a server publishing to raw.
func newIngestEnv(t *testing.T, raw firmbridge.RawPublisher, edit func(*api.Server)) *ingestEnv {
	t.Helper()
	reg, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	env := &ingestEnv{
		tokens: &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: MustKey(t)},
		audit:  &memAudit{},
	}
	if raw == nil {
		var raws []string
		for _, d := range firmbridge.Domains {
			raws = append(raws, firmbridge.RawTopic(d))
		}
		env.kafka = testenv.PrefixedKafka(t, raws...)
		pub := kafka.NewRawPublisher(env.kafka)
		t.Cleanup(func() { pub.Close() })
		raw = pub
	}
	srv := &api.Server{Tokens: env.tokens, Audit: env.audit, Raw: raw, Connectors: reg,
		Logger: slog.New(slog.NewTextHandler(testLog{t}, nil))}
	if edit != nil {
		edit(srv)
	}
	env.handler = srv.Handler()
	return env
}

func (e *ingestEnv) token(t *testing.T, role, org string) string {
	t.Helper()
	tok, err := e.tokens.Issue("robot@"+org, role, org, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends body to path as the given token; requestID may be "".
func (e *ingestEnv) post(t *testing.T, token, path, contentType, requestID string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func mustIngestResponse(t *testing.T, rec *httptest.ResponseRecorder) api.IngestResponse {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	var resp api.IngestResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("decode response: %v; body %s", err, rec.Body)
	}
	return resp
}

// checkResults compares results ignoring the messages' wording, which
// must only be present for rejects.
func checkResults(t *testing.T, got api.IngestResponse, want []api.IngestResult) {
	t.Helper()
	var accepted, rejected int
	for _, r := range want {
		if r.Status == api.IngestAccepted {
			accepted++
		} else {
			rejected++
		}
	}
	if got.Accepted != accepted || got.Rejected != rejected {
		t.Errorf("accepted %d rejected %d, want %d and %d", got.Accepted, got.Rejected, accepted, rejected)
	}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(got.Results), len(want), got.Results)
	}
	for i, g := range got.Results {
		if (g.Message != "") != (g.Status == api.IngestRejected) {
			t.Errorf("result %d: message %q for status %s", i, g.Message, g.Status)
		}
		g.Message = ""
		if g != want[i] {
			t.Errorf("result %d = %+v, want %+v", i, g, want[i])
		}
	}
}

// readTopic returns every message of a topic, across its partitions.
func readTopic(t *testing.T, cfg kafka.Config, topic string) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kafkago.DialContext(ctx, "tcp", cfg.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []kafkago.Message
	for _, p := range parts {
		// A fresh topic's partition may not answer as led yet: ask again
		// for its leader until it does, within the test's bound.
		var lc *kafkago.Conn
		var first, last int64
		for {
			lc, err = kafkago.DialLeader(ctx, "tcp", net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port)), topic, p.ID)
			if err == nil {
				if first, last, err = lc.ReadOffsets(); err != nil {
					lc.Close()
				}
			}
			var kerr kafkago.Error
			if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() || ctx.Err() != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
			if fresh, perr := conn.ReadPartitions(topic); perr == nil {
				for _, fp := range fresh {
					if fp.ID == p.ID {
						p = fp
					}
				}
			}
		}
		if err != nil {
			t.Fatalf("offsets of %s/%d: %v", topic, p.ID, err)
		}
		if _, err := lc.Seek(first, kafkago.SeekAbsolute); err != nil {
			lc.Close()
			t.Fatal(err)
		}
		_ = lc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for off := first; off < last; {
			m, err := lc.ReadMessage(10 << 20)
			if err != nil {
				lc.Close()
				t.Fatalf("read %s/%d at %d: %v", topic, p.ID, off, err)
			}
			out = append(out, m)
			off = m.Offset + 1
		}
		lc.Close()
	}
	return out
}

func header(m kafkago.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// published is what a test expects on a raw topic: the key and record id of
// each message, in key order.
type published struct{ key, recordID string }

func checkTopic(t *testing.T, msgs []kafkago.Message, requestIDs []string, want []published) []firmbridge.Envelope {
	t.Helper()
	var got []published
	var envs []firmbridge.Envelope
	for _, m := range msgs {
		var env firmbridge.Envelope
		if err := json.Unmarshal(m.Value, &env); err != nil {
			t.Fatalf("message %s is not an envelope: %v", m.Value, err)
		}
		got = append(got, published{string(m.Key), env.RecordID})
		envs = append(envs, env)
		if p := header(m, kafka.HeaderProvider); p != providerOrg {
			t.Errorf("message %s: provider header %q, want %q", m.Key, p, providerOrg)
		}
		if r := header(m, kafka.HeaderRequestID); !slices.Contains(requestIDs, r) {
			t.Errorf("message %s: request id header %q, want one of %v", m.Key, r, requestIDs)
		}
	}
	cmp := func(a, b published) int { return strings.Compare(a.key+"\x00"+a.recordID, b.key+"\x00"+b.recordID) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("topic holds %v, want exactly %v", got, want)
	}
	return envs
}

func TestIngest_ProviderFileGB18030(t *testing.T) {
	env := newIngestEnv(t, nil, nil)
	tok := env.token(t, firmbridge.RoleProvider, providerOrg)
	header := "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	file := strings.Join([]string{
		header,
		`91350100m000100y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`,
		``,
		`,无名公司,2024-01-01,2024-03-31,2024-04-15,100,13,0,13,元`,
		// Structurally fine, but its sales are not an amount: accepted here,
		// dead-lettered by ingest.
		`91350100M000100Y43,福州某某科技有限公司,2024-04-01,2024-06-30,2024-07-15,不是金额,1.00,1.00,0.00,元`,
	}, "\r\n") + "\r\n"
	gb, err := simplifiedchinese.GB18030.NewEncoder().Bytes([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"observed_at": {"2024-04-16"}, "record_id_field": {"纳税人识别号,所属期起"}}
	want := []api.IngestResult{
		{Line: 2, RecordID: "tax.vat_return:91350100M000100Y43|2024-01-01", Status: api.IngestAccepted},
		{Line: 4, RecordID: connectors.RecordID("tax.vat_return", `,无名公司,2024-01-01,2024-03-31,2024-04-15,100,13,0,13,元`),
			Status: api.IngestRejected, Code: firmbridge.RejectMissingField, Field: "纳税人识别号"},
		{Line: 5, RecordID: "tax.vat_return:91350100M000100Y43|2024-04-01", Status: api.IngestAccepted},
	}

	// The charset comes as a query parameter, then in the Content-Type: the
	// same file gets the same record ids, so a re-send replaces itself.
	q.Set("charset", "gb18030")
	rec := env.post(t, tok, "/v1/ingest/tax.vat_return?"+q.Encode(), "text/csv", "req-csv-1", gb)
	checkResults(t, mustIngestResponse(t, rec), want)
	q.Del("charset")
	rec = env.post(t, tok, "/v1/ingest/tax.vat_return?"+q.Encode(), "text/csv; charset=GB18030", "req-csv-2", gb)
	checkResults(t, mustIngestResponse(t, rec), want)

	msgs := readTopic(t, env.kafka, env.kafka.Topic(firmbridge.RawTopic(firmbridge.DomainTax)))
	envs := checkTopic(t, msgs, []string{"req-csv-1", "req-csv-2"}, []published{
		{want[0].RecordID, want[0].RecordID}, {want[0].RecordID, want[0].RecordID},
		{want[2].RecordID, want[2].RecordID}, {want[2].RecordID, want[2].RecordID},
	})
	for _, d := range []string{firmbridge.DomainPatent, firmbridge.DomainOperations} {
		if n := len(readTopic(t, env.kafka, env.kafka.Topic(firmbridge.RawTopic(d)))); n != 0 {
			t.Errorf("raw topic of %s holds %d messages, want 0", d, n)
		}
	}

	// What reached Kafka is what ingest normalizes: the original GB18030
	// line, the UTF-8 header, the export time (2024-04-16 in China).
	reg, _ := all.Registry()
	observed := time.Date(2024, 4, 15, 16, 0, 0, 0, time.UTC)
	for _, e := range envs {
		if e.Source != "tax.vat_return" || e.SchemaVersion != 1 || !e.ObservedAt.Equal(observed) || e.Header != header ||
			e.PayloadEncoding != "base64" || e.Charset != connectors.CharsetGB18030 || e.USCC != "" {
			t.Errorf("envelope %+v: want tax.vat_return v1 observed %s, the header, a base64 GB18030 payload, no uscc", e, observed)
		}
		_, err := reg.Normalize(context.Background(), e, observed)
		var rej *firmbridge.Reject
		switch e.RecordID {
		case want[0].RecordID:
			if err != nil {
				t.Errorf("%s: normalize: %v", e.RecordID, err)
			}
		case want[2].RecordID:
			if !errors.As(err, &rej) || rej.Code != firmbridge.RejectInvalidAmount {
				t.Errorf("%s: normalize = %v, want an %s reject (for ingest to dead-letter)", e.RecordID, err, firmbridge.RejectInvalidAmount)
			}
		}
	}
	if n := env.audit.count(); n != 0 {
		t.Errorf("%d access events written, want none: pushing records is not firm data access", n)
	}
}

func TestIngest_EnvelopeLines(t *testing.T) {
	env := newIngestEnv(t, nil, nil)
	tok := env.token(t, firmbridge.RoleProvider, providerOrg)
	lines := []string{
		`{"record_id":"cr-1","source":"tax.credit_rating","schema_version":1,"uscc":"91350100M000100Y43","observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100m000100y43","year":"2023年","rating":"A级"}}`,
		`{"source":"tax.credit_rating","schema_version":1,"observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100M000100Y43","year":"2023","rating":"B"}}`,
		`{"record_id":"cr-3","source":"tax.credit_rating",`,
		`{"record_id":"cr-4","source":"tax.cit_annual","schema_version":1,"observed_at":"2024-05-02T09:00:00+08:00","payload":{"taxpayer_id":"91350100M000100Y43"}}`,
		`{"record_id":"cr-5","source":"tax.credit_rating","schema_version":"v2","observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100M000100Y43","year":"2023","rating":"A"}}`,
		``,
		`{"record_id":"cr-7","source":"TAX.credit_rating","schema_version":"v1","observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"91350100M000100Y43","year":"2022","rating":"B级"}}`,
		`{"record_id":"cr-8","source":"tax.credit_rating","schema_version":1,"observed_at":"2024-05-02T09:00:00+08:00","payload":{"uscc":"not a uscc","year":"someday","rating":"Z"}}`,
		`{"record_id":"cr-9","source":"tax.credit_rating","schema_version":1,"payload":{"uscc":"91350100M000100Y43","year":"2021","rating":"A"}}`,
	}
	rec := env.post(t, tok, "/v1/ingest/tax.credit_rating", "application/x-ndjson", "req-env-1", []byte(strings.Join(lines, "\n")))
	checkResults(t, mustIngestResponse(t, rec), []api.IngestResult{
		{Line: 1, RecordID: "cr-1", Status: api.IngestAccepted},
		{Line: 2, Status: api.IngestRejected, Code: firmbridge.RejectMissingField, Field: "record_id"},
		{Line: 3, Status: api.IngestRejected, Code: firmbridge.RejectInvalidEnvelope, Field: "envelope"},
		{Line: 4, RecordID: "cr-4", Status: api.IngestRejected, Code: firmbridge.RejectInvalidEnvelope, Field: "source"},
		{Line: 5, RecordID: "cr-5", Status: api.IngestRejected, Code: firmbridge.RejectUnknownVersion, Field: "schema_version"},
		{Line: 7, RecordID: "cr-7", Status: api.IngestAccepted},
		{Line: 8, RecordID: "cr-8", Status: api.IngestAccepted},
		{Line: 9, RecordID: "cr-9", Status: api.IngestRejected, Code: firmbridge.RejectMissingField, Field: "observed_at"},
	})

	// A JSON array of envelopes: each element is a "line".
	array := `[{"record_id":"w-1","source":"ops.water","schema_version":1,"uscc":"91350100M000100Y43","observed_at":"2024-04-05T10:00:00Z","payload":{"uscc":"91350100M000100Y43","period":"2024-03","volume_m3":"1,250"}},
	  {"record_id":"w-2","source":"ops.water","schema_version":1,"observed_at":"2024-04-05T10:00:00Z"}]`
	rec = env.post(t, tok, "/v1/ingest/ops.water", "application/json; charset=utf-8", "req-env-2", []byte(array))
	checkResults(t, mustIngestResponse(t, rec), []api.IngestResult{
		{Line: 1, RecordID: "w-1", Status: api.IngestAccepted},
		{Line: 2, RecordID: "w-2", Status: api.IngestRejected, Code: firmbridge.RejectMissingField, Field: "payload"},
	})

	// Provider JSON lines (not envelopes) with ?format=records.
	records := `{"uscc": "91350100M000100Y43", "period": "2024-04", "volume_m3": "1,300"}` + "\n" + `not json`
	rec = env.post(t, tok, "/v1/ingest/ops.water?format=records&observed_at=2024-05-03T08:00:00%2B08:00", "application/x-ndjson", "req-env-3", []byte(records))
	jsonRecID := connectors.RecordID("ops.water", `{"uscc": "91350100M000100Y43", "period": "2024-04", "volume_m3": "1,300"}`)
	checkResults(t, mustIngestResponse(t, rec), []api.IngestResult{
		{Line: 1, RecordID: jsonRecID, Status: api.IngestAccepted},
		{Line: 2, RecordID: connectors.RecordID("ops.water", "not json"), Status: api.IngestRejected, Code: firmbridge.RejectInvalidPayload, Field: "payload"},
	})

	checkTopic(t, readTopic(t, env.kafka, env.kafka.Topic(firmbridge.RawTopic(firmbridge.DomainTax))), []string{"req-env-1"},
		[]published{{"91350100M000100Y43", "cr-1"}, {"cr-7", "cr-7"}, {"cr-8", "cr-8"}})
	ops := checkTopic(t, readTopic(t, env.kafka, env.kafka.Topic(firmbridge.RawTopic(firmbridge.DomainOperations))), []string{"req-env-2", "req-env-3"},
		[]published{{"91350100M000100Y43", "w-1"}, {jsonRecID, jsonRecID}})
	for _, e := range ops {
		if e.RecordID == jsonRecID && !e.ObservedAt.Equal(time.Date(2024, 5, 3, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("observed_at of a provider record = %s, want the ?observed_at", e.ObservedAt)
		}
	}
	if n := len(readTopic(t, env.kafka, env.kafka.Topic(firmbridge.RawTopic(firmbridge.DomainPatent)))); n != 0 {
		t.Errorf("raw topic of patent holds %d messages, want 0", n)
	}
}

func TestIngest_Refused(t *testing.T) {
	pub := &fakePublisher{}
	env := newIngestEnv(t, pub, func(s *api.Server) { s.MaxIngestBytes, s.MaxIngestRecords = 2048, 3 })
	provider := env.token(t, firmbridge.RoleProvider, providerOrg)
	envelope := func(id string) string {
		return `{"record_id":"` + id + `","source":"ops.water","schema_version":1,"observed_at":"2024-04-05T10:00:00Z","payload":{"uscc":"91350100M000100Y43","period":"2024-03","volume_m3":"1"}}`
	}
	tests := []struct {
		name, token, path, contentType, body string
		status                               int
		code                                 string
	}{
		{"no token", "", "/v1/ingest/ops.water", "application/x-ndjson", envelope("a"), 401, "token_missing"},
		{"bank token", env.token(t, firmbridge.RoleBank, "BANK-1"), "/v1/ingest/ops.water", "application/x-ndjson", envelope("a"), 403, "role_not_allowed"},
		{"regulator token", env.token(t, firmbridge.RoleRegulator, "REG-1"), "/v1/ingest/ops.water", "application/x-ndjson", envelope("a"), 403, "role_not_allowed"},
		{"body too large", provider, "/v1/ingest/ops.water", "application/x-ndjson", strings.Repeat(envelope("a")+"\n", 16), 413, "body_too_large"},
		{"too many lines", provider, "/v1/ingest/ops.water", "application/x-ndjson", envelope("a") + "\n\n" + envelope("b") + "\n" + envelope("c") + "\n" + envelope("d"), 413, "too_many_records"},
		{"too many array elements", provider, "/v1/ingest/ops.water", "application/json", "[" + envelope("a") + "," + envelope("b") + "," + envelope("c") + "," + envelope("d") + "]", 413, "too_many_records"},
		{"too many CSV lines", provider, "/v1/ingest/ops.electricity", "text/csv", "account_no,uscc,month,consumption,unit,peak_kw,arrears\n1,x,2024-01,1,kWh,,\n2,x,2024-01,1,kWh,,\n3,x,2024-01,1,kWh,,\n4,x,2024-01,1,kWh,,\n", 413, "too_many_records"},
		{"unknown source", provider, "/v1/ingest/tax.vat_refund", "application/x-ndjson", envelope("a"), 404, "unknown_source"},
		{"plain text", provider, "/v1/ingest/ops.water", "text/plain", envelope("a"), 415, "unsupported_media_type"},
		{"XML", provider, "/v1/ingest/ops.water", "application/xml", "<a/>", 415, "unsupported_media_type"},
		{"no content type", provider, "/v1/ingest/ops.water", "", envelope("a"), 415, "unsupported_media_type"},
		{"empty body", provider, "/v1/ingest/ops.water", "application/x-ndjson", "", 400, "empty_body"},
		{"blank body", provider, "/v1/ingest/ops.water", "application/x-ndjson", " \n\r\n ", 400, "empty_body"},
		{"empty array", provider, "/v1/ingest/ops.water", "application/json", "[]", 400, "empty_body"},
		{"broken array", provider, "/v1/ingest/ops.water", "application/json", "[" + envelope("a") + ",", 400, "invalid_body"},
		{"CSV header only", provider, "/v1/ingest/ops.electricity", "text/csv", "account_no,uscc,month,consumption,unit,peak_kw,arrears\n", 400, "empty_body"},
		{"CSV of another source", provider, "/v1/ingest/ops.electricity", "text/csv", "uscc,period,volume_m3\nx,2024-03,1\n", 400, "header_mismatch"},
		{"unknown charset", provider, "/v1/ingest/ops.electricity?charset=latin1", "text/csv", "account_no,uscc,month,consumption,unit,peak_kw,arrears\n1,x,2024-01,1,kWh,,\n", 400, "invalid_charset"},
		{"bad observed_at", provider, "/v1/ingest/ops.electricity?observed_at=yesterday", "text/csv", "account_no,uscc,month,consumption,unit,peak_kw,arrears\n1,x,2024-01,1,kWh,,\n", 400, "invalid_observed_at"},
		{"observed_at in the future", provider, "/v1/ingest/ops.electricity?observed_at=2999-01-01", "text/csv", "account_no,uscc,month,consumption,unit,peak_kw,arrears\n1,x,2024-01,1,kWh,,\n", 400, "invalid_observed_at"},
		{"unknown format", provider, "/v1/ingest/ops.water?format=xml", "application/x-ndjson", envelope("a"), 400, "invalid_format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := env.post(t, tt.token, tt.path, tt.contentType, "", []byte(tt.body))
			var p api.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("status %d, body %s: not a problem: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != tt.status || p.Code != tt.code || p.Status != tt.status || p.Detail == "" || p.RequestID == "" {
				t.Errorf("got %d %+v, want %d with code %s, a detail and a request id", rec.Code, p, tt.status, tt.code)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
		})
	}
	if pub.batches != 0 {
		t.Errorf("%d batches published by refused requests, want 0", pub.batches)
	}

	t.Run("every record rejected", func(t *testing.T) {
		rec := env.post(t, provider, "/v1/ingest/ops.water", "application/x-ndjson", "", []byte(`{"source":"ops.water"}`))
		checkResults(t, mustIngestResponse(t, rec), []api.IngestResult{
			{Line: 1, Status: api.IngestRejected, Code: firmbridge.RejectMissingField, Field: "record_id"}})
		if pub.batches != 0 {
			t.Errorf("%d batches published, want 0", pub.batches)
		}
	})
}

func TestIngest_PublishUnavailable(t *testing.T) {
	body := []byte(`{"record_id":"w-1","source":"ops.water","schema_version":1,"observed_at":"2024-04-05T10:00:00Z","payload":{"uscc":"91350100M000100Y43","period":"2024-03","volume_m3":"1"}}`)
	check := func(t *testing.T, env *ingestEnv) {
		t.Helper()
		rec := env.post(t, env.token(t, firmbridge.RoleProvider, providerOrg), "/v1/ingest/ops.water", "application/x-ndjson", "", body)
		var p api.Problem
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusServiceUnavailable || p.Code != "publish_unavailable" || strings.Contains(rec.Body.String(), `"accepted"`) {
			t.Errorf("got %d %s, want 503 publish_unavailable and no results", rec.Code, rec.Body)
		}
	}
	t.Run("publisher fails", func(t *testing.T) {
		check(t, newIngestEnv(t, &fakePublisher{err: errors.New("kafka: broker down")}, nil))
	})
	t.Run("raw topic missing on the real broker", func(t *testing.T) {
		kcfg := testenv.Kafka(t)
		kcfg.TopicPrefix = "test.ingest.missing." + testenv.Suffix() + "."
		pub := kafka.NewRawPublisher(kcfg)
		pub.Timeout = 10 * time.Second
		t.Cleanup(func() { pub.Close() })
		check(t, newIngestEnv(t, pub, nil))
	})
}
