package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/internal/testenv"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// benchCommand runs `firmbridge bench KIND ARGS...` against the test services,
// writing its results to a scratch file, and returns what it printed on
// stdout and stderr and that file's path; it fails the test if the
// command fails.
func benchCommand(ctx context.Context, t *testing.T, kcfg kafka.Config, kind string, args ...string) (stdout, stderr, output string) {
	t.Helper()
	output = filepath.Join(t.TempDir(), "BENCHMARKS.md")
	var out, errOut bytes.Buffer
	args = append([]string{"bench", kind}, args...)
	args = append(args, "--clickhouse", testenv.ClickHouseAddr(), "--kafka", strings.Join(kcfg.Brokers, ","), "--output", output)
	if err := run(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("bench %s: %v\nstderr:\n%s", kind, err, errOut.String())
	}
	return out.String(), errOut.String(), output
}

// TestBenchIngest runs a small `firmbridge bench ingest` against the real
// services: every record arrives end to end, the table is printed and
// appended to the output file, and the scratch topics, consumer groups and
// databases are gone afterwards.
func TestBenchIngest(t *testing.T) {
	kcfg := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Baseline B in three rounds, as a corpus of millions goes.
	defer func(n int) { bareRoundRecords = n }(bareRoundRecords)
	bareRoundRecords = 700
	out, stderr, output := benchCommand(ctx, t, kcfg, "ingest", "--records", "2000", "--partitions", "2", "--batch-rows", "500", "--batch-wait", "200ms")

	t.Run("every measure is in the table", func(t *testing.T) {
		for _, measure := range []string{"| baseline A: bare kafka-go consume | 2000 |", "| baseline B: bare clickhouse-go insert | 2000 |", "| normalize only"} {
			if !strings.Contains(out, measure) {
				t.Errorf("no line starting %q in the output:\n%s", measure, out)
			}
		}
	})
	t.Run("every record arrived end to end", func(t *testing.T) {
		m := regexp.MustCompile(`(?m)^\| end-to-end: [^|]+\| (\d+) \| (\d+) \|`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no end-to-end line in the output:\n%s", out)
		}
		if got, want := m[1], "2000"; got != want {
			t.Errorf("end-to-end records = %s, want %s", got, want)
		}
		if !strings.Contains(out, "2000 messages fetched, "+m[2]+" rows stored, 0 dead letters (0 expected)") {
			t.Errorf("the notes do not account for every record:\n%s", out)
		}
		// Baseline B, in rounds, inserted the same rows.
		if !strings.Contains(out, "| baseline B: bare clickhouse-go insert | 2000 | "+m[2]+" |") {
			t.Errorf("baseline B did not insert the %s rows of the end-to-end measure:\n%s", m[2], out)
		}
	})
	t.Run("the run is appended with the machine and the command", func(t *testing.T) {
		b, err := os.ReadFile(output)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"# Benchmarks", "`firmbridge bench ingest --records 2000 ", "- machine: ", "| end-to-end: "} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %q:\n%s", output, want, b)
			}
		}
	})
	t.Run("the scratch topics, groups and databases are removed", func(t *testing.T) {
		m := regexp.MustCompile(`scratch topics and consumer groups (bench\.(\S+)\.)\*`).FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("stderr does not name the scratch resources:\n%s", stderr)
		}
		prefix, name := m[1], m[2]
		conn, err := kafkago.DialContext(ctx, "tcp", kcfg.Brokers[0])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Topic deletion is asynchronous: give the metadata a moment.
		var left []string
		for deadline := time.Now().Add(20 * time.Second); ; {
			parts, err := conn.ReadPartitions()
			if err != nil {
				t.Fatal(err)
			}
			left = left[:0]
			for _, p := range parts {
				if strings.HasPrefix(p.Topic, prefix) && !slices.Contains(left, p.Topic) {
					left = append(left, p.Topic)
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
		groups, err := (&kafkago.Client{Addr: kafkago.TCP(kcfg.Brokers...)}).ListGroups(ctx, &kafkago.ListGroupsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups.Groups {
			if strings.HasPrefix(g.GroupID, prefix) {
				t.Errorf("scratch consumer group left: %s", g.GroupID)
			}
		}
		store, err := schema.Open(ctx, schema.Config{Addr: testenv.ClickHouseAddr(), Database: "default"})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		var dbs uint64
		if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.databases WHERE startsWith(name, ?)", "bench_"+name).Scan(&dbs); err != nil {
			t.Fatal(err)
		}
		if dbs != 0 {
			t.Errorf("%d scratch databases bench_%s* left", dbs, name)
		}
	})
}

// A run lands in its own section of the benchmarks file, above the marker
// that ends the section's runs; other sections are left as they are.
func TestAppendBenchmark_IntoItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := "# Benchmarks\n\n# bench ingest\n\n### old ingest run\n\n" + benchmarkMarker("ingest") + "\n\n## What limits it\n\ntext\n\n# bench api\n\n" + benchmarkMarker("api") + "\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 29, 19, 45, 0, 0, time.UTC)
	if err := appendBenchmark(path, "ingest", at, "firmbridge bench ingest", "| table |\n", "- note\n", "- machine\n"); err != nil {
		t.Fatal(err)
	}
	if err := appendBenchmark(path, "audit", at, "firmbridge bench audit", "| audit table |\n", "", "- machine\n"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n# bench ingest\n\n### old ingest run\n\n" +
		"### 2026-11-29 19:45 UTC: bench ingest\n\n`firmbridge bench ingest`\n\n- machine\n\n| table |\n\n- note\n\n" +
		benchmarkMarker("ingest") + "\n\n## What limits it\n\ntext\n\n# bench api\n\n" + benchmarkMarker("api") + "\n\n" +
		"### 2026-11-29 19:45 UTC: bench audit\n\n`firmbridge bench audit`\n\n- machine\n\n| audit table |\n\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
