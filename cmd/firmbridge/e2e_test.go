package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/ingest"
	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

const (
	testUSCC = "91350100M000100Y43"
	testBank = "BANK-TEST-001"
)

// TestThinSlice follows one VAT return from the raw topic to a bank's
// profile: denied without consent, served with it, denied again after
// revocation, and every request in the audit table.
func TestThinSlice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store := testenv.Store(t)
	kcfg := testenv.Kafka(t)
	topics := testenv.Topics(t, kcfg, "raw.tax", "dlq.tax", "audit", "dlq.audit")
	rawTopic, dlqTopic, auditTopic, auditDLQ := topics[0], topics[1], topics[2], topics[3]

	// A provider publishes one quarterly VAT return, GB18030-encoded, in 万元.
	header := "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	line := `91350100m000100y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`
	gbk, err := simplifiedchinese.GB18030.NewEncoder().String(line)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(gbk)))
	env := firmbridge.Envelope{RecordID: "vat-2024Q1-0001", Source: "tax.vat_return", SchemaVersion: 1, USCC: testUSCC,
		ObservedAt: time.Date(2024, 4, 16, 8, 0, 0, 0, time.UTC), Payload: payload, Header: header,
		PayloadEncoding: "base64", Charset: "gb18030"}
	body, _ := json.Marshal(env)
	w := kafka.NewWriter(kcfg, rawTopic)
	// Sent twice, as providers do: the profile must still show it once.
	for range 2 {
		if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte(testUSCC), Value: body}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	registry, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	ingestCtx, stopIngest := context.WithCancel(ctx)
	done := make(chan error, 2)
	taxPipeline := &ingest.Pipeline{Brokers: kcfg.Brokers, Topic: rawTopic, GroupID: "test-" + rawTopic, DeadLetterTopic: dlqTopic,
		Decode: ingest.EnvelopeDecoder(registry), Sink: store, BatchWait: 200 * time.Millisecond}
	auditKey, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	auditSealer := &ingest.Sealer{Brokers: kcfg.Brokers, Topic: auditTopic, GroupID: "test-" + auditTopic, DeadLetterTopic: auditDLQ,
		Store: schema.AuditStore{Store: store}, SigningKey: auditKey.Private, KeyID: auditKey.ID, BatchWait: 200 * time.Millisecond}
	for _, run := range []func(context.Context) error{taxPipeline.Run, auditSealer.Run} {
		go func() { done <- run(ingestCtx) }()
	}
	defer func() {
		stopIngest()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("pipeline: %v", err)
			}
		}
	}()
	waitFor(t, "both copies stored", func() bool { return taxPipeline.Stats().Rows.Load() >= 2 })
	if n := taxPipeline.Stats().DeadLetters.Load(); n != 0 {
		t.Fatalf("%d records dead-lettered, want none", n)
	}

	key, err := api.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	tokens := &api.Tokens{Issuer: "firmbridge", Audience: "firmbridge-api", Signing: key}
	audit := kafka.NewAuditLog(kcfg, auditTopic)
	defer audit.Close()
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer((&api.Server{Tokens: tokens, Consents: schema.ConsentStore{Store: store},
		Profiles: schema.ProfileReader{Store: store}, Audit: audit, Metrics: api.NewMetrics(reg), Registry: reg}).Handler())
	defer srv.Close()
	bank := mustToken(t, tokens, "bank", testBank)
	firm := mustToken(t, tokens, "enterprise", testUSCC)
	profileURL := srv.URL + "/v1/firms/" + testUSCC + "/profile?purpose=credit_assessment"

	t.Run("without consent: 403 consent_required", func(t *testing.T) {
		status, ctype, body := call(t, "GET", profileURL, bank, "")
		var p api.Problem
		_ = json.Unmarshal(body, &p)
		if status != 403 || p.Code != "consent_required" || !strings.HasPrefix(ctype, "application/problem+json") {
			t.Fatalf("got %d %s %s, want 403 problem+json consent_required", status, ctype, body)
		}
	})

	var consentID string
	t.Run("enterprise grants tax consent", func(t *testing.T) {
		status, _, body := call(t, "POST", srv.URL+"/v1/consents", firm,
			`{"grantee":"`+testBank+`","scopes":["tax"],"purpose":"credit_assessment"}`)
		if status != 201 {
			t.Fatalf("grant: %d %s", status, body)
		}
		var c firmbridge.Consent
		_ = json.Unmarshal(body, &c)
		if c.Status != "ACTIVE" || c.USCC != testUSCC {
			t.Fatalf("granted consent %+v", c)
		}
		consentID = c.ID
	})

	t.Run("with consent: the published figures in yuan", func(t *testing.T) {
		status, _, body := call(t, "GET", profileURL, bank, "")
		if status != 200 {
			t.Fatalf("profile: %d %s", status, body)
		}
		var p firmbridge.Profile
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Identity == nil || p.Identity.Name != "福州某某科技有限公司" {
			t.Errorf("identity %+v, want 福州某某科技有限公司", p.Identity)
		}
		if p.Tax == nil || len(p.Tax.Returns) != 1 {
			t.Fatalf("tax section %+v, want exactly one return (sent twice, stored once)", p.Tax)
		}
		got := p.Tax.Returns[0]
		want := firmbridge.VATPeriod{PeriodStart: "2024-01-01", PeriodEnd: "2024-03-31", PeriodKind: "quarter", FiledOn: "2024-04-15",
			Late: false, Sales: "12345600.00", OutputTax: "1604900.00", InputTax: "882000.00", TaxPayable: "722900.00", RecordID: "vat-2024Q1-0001"}
		if got != want {
			t.Errorf("return\n got %+v\nwant %+v", got, want)
		}
		if p.ConsentID != consentID {
			t.Errorf("consent_id %s, want %s", p.ConsentID, consentID)
		}
	})

	t.Run("revocation bites on the next request", func(t *testing.T) {
		if status, _, body := call(t, "POST", srv.URL+"/v1/consents/"+consentID+"/revoke", firm, ""); status != 200 {
			t.Fatalf("revoke: %d %s", status, body)
		}
		status, _, body := call(t, "GET", profileURL, bank, "")
		if status != 403 || !strings.Contains(string(body), `"code":"consent_revoked"`) {
			t.Fatalf("after revoke: %d %s, want 403 consent_revoked", status, body)
		}
		other := srv.URL + "/v1/firms/" + testUSCC + "/profile?purpose=loan_monitoring"
		if status, _, body := call(t, "GET", other, bank, ""); status != 403 || !strings.Contains(string(body), `"code":"consent_required"`) {
			t.Fatalf("another purpose: %d %s, want 403 consent_required", status, body)
		}
	})

	t.Run("other roles and firms are refused", func(t *testing.T) {
		if status, _, _ := call(t, "GET", profileURL, firm, ""); status != 403 {
			t.Errorf("enterprise reading a profile: %d, want 403", status)
		}
		if status, _, _ := call(t, "GET", profileURL, "", ""); status != 401 {
			t.Errorf("no token: %d, want 401", status)
		}
		status, _, body := call(t, "GET", srv.URL+"/v1/firms/91350100M000100Y44/profile?purpose=credit_assessment", bank, "")
		if status != 400 || !strings.Contains(string(body), "invalid_uscc") {
			t.Errorf("bad check character: %d %s, want 400 invalid_uscc", status, body)
		}
	})

	t.Run("metrics count requests and denials by reason", func(t *testing.T) {
		_, _, body := call(t, "GET", srv.URL+"/metrics", "", "")
		for _, want := range []string{
			`firmbridge_api_access_denied_total{reason="consent_revoked"} 1`,
			`firmbridge_api_requests_total{method="GET",route="/v1/firms/:uscc/profile",status="200"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	// Every request above touched firm data or consents: deny, grant,
	// allow, revoke, deny, deny, role deny, no token (deny), invalid USCC
	// deny.
	waitFor(t, "9 access events", func() bool { return auditSealer.Stats().Messages.Load() >= 9 })
	waitCount(t, store, "SELECT count() FROM audit_events FINAL", 9)
	var allowed, denied uint64
	if err := store.Conn().QueryRow(ctx, "SELECT countIf(decision = 'allow'), countIf(decision = 'deny') FROM audit_events FINAL").Scan(&allowed, &denied); err != nil {
		t.Fatal(err)
	}
	if allowed != 3 || denied != 6 {
		t.Errorf("access events: %d allowed, %d denied; want 3 and 6", allowed, denied)
	}
}

func mustToken(t *testing.T, tokens *api.Tokens, role, org string) string {
	t.Helper()
	tok, err := tokens.Issue("tester@"+org, role, org, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func call(t *testing.T, method, url, token, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 60s waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCount polls a count query until it reaches want (exactly) or fails
// after a bound.
func waitCount(t *testing.T, store *schema.Store, query string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got uint64
	for time.Now().Before(deadline) {
		if err := store.Conn().QueryRow(context.Background(), query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("%s = %d, want %d", query, got, want)
	}
}
