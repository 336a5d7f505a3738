// Package testenv gives tests the real ClickHouse and Kafka started by
// deploy/local: a scratch database and scratch topics per test, removed
// afterwards. A test that needs a service fails, never skips, when the
// service is missing; only -short skips them, on purpose.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

const howToStart = "start the services with `deploy/local/services.sh up` (or run every test with `make test`, which starts them)"

// ClickHouseAddr is the native address of the test ClickHouse.
func ClickHouseAddr() string { return getenv("FIRMBRIDGE_CLICKHOUSE_ADDR", "127.0.0.1:19000") }

// ClickHouseCluster is the cluster the test ClickHouse servers form, empty
// for the single server of deploy/local/services.sh. Set (as
// deploy/local/cluster.sh env prints it), every scratch database is created
// on the cluster, with replicated and Distributed tables.
func ClickHouseCluster() string { return os.Getenv("FIRMBRIDGE_CLICKHOUSE_CLUSTER") }

// KafkaBrokers are the test Kafka brokers.
func KafkaBrokers() []string {
	return strings.Split(getenv("FIRMBRIDGE_KAFKA_BROKERS", "127.0.0.1:19092"), ",")
}

// intenv reads a whole number from the environment, 0 when unset.
func intenv(t testing.TB, k string) int {
	t.Helper()
	v := os.Getenv(k)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a whole number", k, v)
	}
	return n
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Suffix returns a short random suffix for scratch names.
func Suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func scratchName(t testing.TB) string {
	name := nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	return "test_" + strings.Trim(name, "_") + "_" + Suffix()
}

// Store returns a store on a new, migrated scratch database, dropped when
// the test ends.
func Store(t testing.TB) *schema.Store {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ClickHouse; skipped because -short was given")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := schema.Open(ctx, schema.Config{Addr: ClickHouseAddr(), Database: scratchName(t), Cluster: ClickHouseCluster()})
	if err != nil {
		t.Fatalf("ClickHouse is not reachable at %s: %v\n%s", ClickHouseAddr(), err, howToStart)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := store.DropDatabase(ctx); err != nil {
			t.Logf("drop scratch database %s: %v", store.Database(), err)
		}
		store.Close()
	})
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate scratch database %s: %v", store.Database(), err)
	}
	return store
}

// Kafka returns the test broker config after checking that it answers.
func Kafka(t testing.TB) kafka.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Kafka; skipped because -short was given")
	}
	cfg := kafka.Config{Brokers: KafkaBrokers(), Partitions: 2,
		ReplicationFactor: intenv(t, "FIRMBRIDGE_KAFKA_REPLICATION_FACTOR"), MinInsyncReplicas: intenv(t, "FIRMBRIDGE_KAFKA_MIN_INSYNC_REPLICAS")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafka.Ping(ctx, cfg); err != nil {
		t.Fatalf("Kafka is not reachable at %s: %v\n%s", strings.Join(cfg.Brokers, ","), err, howToStart)
	}
	return cfg
}

// PrefixedKafka returns the test broker config with a fresh topic prefix,
// for code that names topics through kafka.Config.Topic, and creates the
// named platform topics under it (every platform topic when none is
// named); they are deleted when the test ends.
func PrefixedKafka(t testing.TB, names ...string) kafka.Config {
	t.Helper()
	cfg := Kafka(t)
	cfg.TopicPrefix = "test." + Suffix() + "."
	topics := cfg.PlatformTopics()
	if len(names) > 0 {
		topics = topics[:0]
		for _, n := range names {
			topics = append(topics, cfg.Topic(n))
		}
	}
	ensureTopics(t, cfg, topics)
	return cfg
}

// Topics creates scratch topics named after the given bases and deletes
// them when the test ends; it returns their names in order.
func Topics(t testing.TB, cfg kafka.Config, bases ...string) []string {
	t.Helper()
	suffix := Suffix()
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = "test." + b + "." + suffix
	}
	ensureTopics(t, cfg, names)
	return names
}

// ensureTopics creates topics and deletes them when the test ends.
func ensureTopics(t testing.TB, cfg kafka.Config, names []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg, names...); err != nil {
		t.Fatalf("create scratch topics: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kafka.DeleteTopics(ctx, cfg, names...); err != nil {
			t.Logf("delete scratch topics: %v", err)
		}
	})
}

// Messages counts the messages in every partition of topic: the sum of
// last minus first offset. A partition whose offsets come back with an
// error (a new topic's leader not elected yet answers -1) is asked again
// for up to 10 s, instead of being counted wrong.
func Messages(t testing.TB, cfg kafka.Config, topic string) int64 {
	t.Helper()
	parts, err := kafka.Partitions(context.Background(), cfg, topic)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string][]kafkago.OffsetRequest{}
	for _, p := range parts {
		req[topic] = append(req[topic], kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
	}
	client := &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...)}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := client.ListOffsets(context.Background(), &kafkago.ListOffsetsRequest{Topics: req})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var partErr error
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				partErr = fmt.Errorf("partition %d: %w", p.Partition, p.Error)
			}
			n += p.LastOffset - p.FirstOffset
		}
		if partErr == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("offsets of %s: %v", topic, partErr)
		}
	}
}
