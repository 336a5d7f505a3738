package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/internal/testenv"
)

// TestRevocation_ReachesEveryInstance runs two API processes on one
// ClickHouse database and one Kafka cluster. A bank reads through instance
// B while the firm revokes through instance A; B must refuse within 1 s,
// although B serves consents from its cache. Bounded: the revocation is
// repeated a few times and each wait is capped.
func TestRevocation_ReachesEveryInstance(t *testing.T) {
	store := testenv.Store(t)
	kcfg := testenv.PrefixedKafka(t)
	bin := buildBinary(t)
	keyFile, tokens := tokenKey(t)
	bank := mustToken(t, tokens, "bank", testBank)
	firm := mustToken(t, tokens, "enterprise", testUSCC)

	start := func(name string) string {
		return startServe(t, bin, name, "--clickhouse", testenv.ClickHouseAddr(),
			"--clickhouse-db", store.Database(), "--kafka", strings.Join(kcfg.Brokers, ","),
			"--topic-prefix", kcfg.TopicPrefix, "--key-file", keyFile, "--log-level", "warn",
			// No sealer runs here: this test is about consents, not the audit guard.
			"--audit-max-digest-age", "0")
	}
	instanceA, instanceB := start("a"), start("b")
	profile := instanceB + "/v1/firms/" + testUSCC + "/profile?purpose=credit_assessment"

	var worst time.Duration
	const rounds = 3
	for round := range rounds {
		status, _, body := call(t, "POST", instanceA+"/v1/consents", firm,
			`{"grantee":"`+testBank+`","scopes":["tax"],"purpose":"credit_assessment"}`)
		if status != 201 {
			t.Fatalf("round %d: grant on A: %d %s", round, status, body)
		}
		var c firmbridge.Consent
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatal(err)
		}
		// B sees the grant and, reading again, serves it from its cache.
		waitFor(t, "the grant to reach B", func() bool {
			status, _, _ := call(t, "GET", profile, bank, "")
			return status == 200
		})
		for range 3 {
			if status, _, body := call(t, "GET", profile, bank, ""); status != 200 {
				t.Fatalf("round %d: B before revocation: %d %s", round, status, body)
			}
		}

		revoked := time.Now()
		status, _, body = call(t, "POST", instanceA+"/v1/consents/"+c.ID+"/revoke", firm, "")
		if status != 200 {
			t.Fatalf("round %d: revoke on A: %d %s", round, status, body)
		}
		// A enforces it on its very next request.
		if status, _, body := call(t, "GET", instanceA+"/v1/firms/"+testUSCC+"/profile?purpose=credit_assessment", bank, ""); status != 403 || !bytes.Contains(body, []byte("consent_revoked")) {
			t.Fatalf("round %d: A after revocation: %d %s, want 403 consent_revoked", round, status, body)
		}
		var took time.Duration
		for {
			status, _, body := call(t, "GET", profile, bank, "")
			took = time.Since(revoked)
			if status == 403 && bytes.Contains(body, []byte("consent_revoked")) {
				break
			}
			if status != 200 {
				t.Fatalf("round %d: B during revocation: %d %s", round, status, body)
			}
			if took > 5*time.Second {
				t.Fatalf("round %d: B still serves the profile %s after the revocation", round, took)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("round %d: B refused %s after the revocation was answered on A", round, took.Round(time.Millisecond))
		worst = max(worst, took)
	}
	// The refusals above are worth something only if B really answered
	// from its cache in between.
	resp, err := http.Get(instanceB + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`firmbridge_api_consent_cache_reads_total\{result="hit"\} [1-9]`).Match(metrics) {
		t.Errorf("B served no consent from its cache:\n%s", grepLines(metrics, "consent_cache"))
	}
	if worst > time.Second {
		t.Errorf("slowest revocation reached B after %s, want within 1 s", worst)
	}
}

// startServe runs `firmbridge serve` on a free loopback port with args,
// with the bank and enterprise rate limits off, until the test ends, and
// returns its base URL once it is ready. Its log is shown if the test fails.
func startServe(t *testing.T, bin, name string, args ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), "FIRMBRIDGE_RATE_LIMIT_BANK=off", "FIRMBRIDGE_RATE_LIMIT_ENTERPRISE=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logFile.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("%s log:\n%s", name, tail(log, 100))
		}
	})
	url := "http://" + addr
	waitFor(t, name+" ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("instance %s exited", name)
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return url
}

// tail returns the last lines of a log.
func tail(b []byte, lines int) string {
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
