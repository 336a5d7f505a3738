package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/schema"
)

// TestBenchAPI runs a small `firmbridge bench api` against the real
// services: every profile is served, by the API and by the schema, the
// table is printed and appended, and the scratch database and topics are
// gone afterwards.
func TestBenchAPI(t *testing.T) {
	kcfg := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, stderr, output := benchCommand(ctx, t, kcfg, "api", "--firms", "300", "--months", "6", "--requests", "200", "--warmup", "20", "--concurrency", "4",
		"--duration", "30s", "--settle", "0s", "--query-profile", "20")

	t.Run("every profile is served", func(t *testing.T) {
		for _, measure := range []string{"| API: GET /v1/firms/{uscc}/profile", "| baseline: the schema reads", "| context: the access event alone"} {
			m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(measure) + `[^|]*\| (\d+) \| (\d+) \|`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no line starting %q in the output:\n%s", measure, out)
			}
			if m[1] != "200" || m[2] != "0" {
				t.Errorf("%s: %s requests, %s errors; want 200 and 0", measure, m[1], m[2])
			}
		}
		for _, want := range []string{"- data: 300 firms", "- consents: 300 to BANK-BENCH-001", "the whole profile of one firm: 20 queries", "- target p99"} {
			if !strings.Contains(out, want) {
				t.Errorf("the notes lack %q:\n%s", want, out)
			}
		}
	})
	t.Run("the run is appended with the machine and the command", func(t *testing.T) {
		b, err := os.ReadFile(output)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"# Benchmarks", ": bench api\n", "`firmbridge bench api --firms 300 ", "- machine: ", "| baseline: "} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %q:\n%s", output, want, b)
			}
		}
	})
	t.Run("the scratch database and topics are removed", func(t *testing.T) {
		m := regexp.MustCompile(`database (bench_api_\S+), topics (\S+) and (\S+)`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("stderr does not name the scratch resources:\n%s", stderr)
		}
		db, topics := m[1], m[2:]
		conn, err := kafkago.DialContext(ctx, "tcp", kcfg.Brokers[0])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var left []string
		for deadline := time.Now().Add(20 * time.Second); ; {
			parts, err := conn.ReadPartitions()
			if err != nil {
				t.Fatal(err)
			}
			left = left[:0]
			for _, p := range parts {
				for _, topic := range topics {
					if p.Topic == topic && !strings.Contains(strings.Join(left, " "), topic) {
						left = append(left, topic)
					}
				}
			}
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(left) > 0 {
			t.Errorf("scratch topics left: %v", left)
		}
		store, err := schema.Open(ctx, schema.Config{Addr: testenv.ClickHouseAddr(), Database: "default"})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		var dbs uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&dbs); err != nil {
			t.Fatal(err)
		}
		if dbs != 0 {
			t.Errorf("scratch database %s left", db)
		}
	})
}
