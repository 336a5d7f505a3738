// Package kafka wraps github.com/segmentio/kafka-go for firmbridge: topic
// set-up, durable producers (acks from all in-sync replicas), and the audit
// log writer. Both the API and the ingest runtime use it; neither imports
// the other.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/firmbridge/firmbridge"
)

// Config says where the brokers are and how topics are made.
type Config struct {
	Brokers           []string
	Partitions        int // per new topic; default 4
	ReplicationFactor int // per new topic; default 1 (one local broker)
	// MinInsyncReplicas, when set, is the new topics' min.insync.replicas:
	// with acks from all in-sync replicas, a write succeeds only once that
	// many brokers hold it (2 of 3 in cluster mode), so one broker may fail
	// without losing an acknowledged record or stopping writes.
	MinInsyncReplicas int
	// TopicPrefix is put before every platform topic name, so that several
	// environments (or tests) can share one cluster.
	TopicPrefix string
}

// Topic returns the full name of a platform topic.
func (c Config) Topic(name string) string { return c.TopicPrefix + name }

func (c Config) partitions() int {
	if c.Partitions > 0 {
		return c.Partitions
	}
	return 4
}

func (c Config) replication() int {
	if c.ReplicationFactor > 0 {
		return c.ReplicationFactor
	}
	return 1
}

// PlatformTopics lists every topic firmbridge reads or writes, prefixed.
func (c Config) PlatformTopics() []string {
	var topics []string
	for _, d := range firmbridge.Domains {
		topics = append(topics, firmbridge.RawTopic(d), firmbridge.DeadLetterTopic(d))
	}
	topics = append(topics, firmbridge.TopicConsentEvents, firmbridge.TopicAuditAccess, firmbridge.DeadLetterTopic("audit"))
	for i := range topics {
		topics[i] = c.Topic(topics[i])
	}
	return topics
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are.
func EnsureTopics(ctx context.Context, cfg Config, topics ...string) error {
	if cfg.Partitions < 0 || cfg.ReplicationFactor < 0 || cfg.MinInsyncReplicas < 0 {
		return fmt.Errorf("kafka: partitions %d, replication factor %d and min.insync.replicas %d must be whole numbers, 0 or more (FIRMBRIDGE_KAFKA_PARTITIONS, FIRMBRIDGE_KAFKA_REPLICATION_FACTOR, FIRMBRIDGE_KAFKA_MIN_INSYNC_REPLICAS)", cfg.Partitions, cfg.ReplicationFactor, cfg.MinInsyncReplicas)
	}
	conn, err := dialAny(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("kafka at %s: find controller: %w", conn.RemoteAddr(), err)
	}
	ctrl, err := dial(ctx, net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return err
	}
	defer ctrl.Close()
	specs := make([]kafkago.TopicConfig, 0, len(topics))
	for _, t := range topics {
		spec := kafkago.TopicConfig{Topic: t, NumPartitions: cfg.partitions(), ReplicationFactor: cfg.replication()}
		if cfg.MinInsyncReplicas > 0 {
			spec.ConfigEntries = []kafkago.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(cfg.MinInsyncReplicas)}}
		}
		specs = append(specs, spec)
	}
	// kafka-go ignores "topic already exists" per topic, so this is idempotent.
	if err := ctrl.CreateTopics(specs...); err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topics %s: %w", strings.Join(topics, ", "), err)
	}
	// Metadata propagates asynchronously; wait until every topic has leaders.
	deadline := time.Now().Add(30 * time.Second)
	for _, t := range topics {
		for {
			parts, err := conn.ReadPartitions(t)
			if err == nil && len(parts) > 0 && allLed(parts) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kafka: topic %s has no leader after 30s: %v", t, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func allLed(parts []kafkago.Partition) bool {
	for _, p := range parts {
		if p.Leader.Host == "" {
			return false
		}
	}
	return true
}

// DeleteTopics removes topics; tests use it to clean up.
func DeleteTopics(ctx context.Context, cfg Config, topics ...string) error {
	conn, err := dialAny(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("kafka: find controller: %w", err)
	}
	ctrl, err := dial(ctx, net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		return err
	}
	defer ctrl.Close()
	if err := ctrl.DeleteTopics(topics...); err != nil {
		return fmt.Errorf("kafka: delete topics: %w", err)
	}
	return nil
}

// Ping checks that a broker of the list answers a metadata request.
func Ping(ctx context.Context, cfg Config) error {
	conn, err := dialAny(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Brokers(); err != nil {
		return fmt.Errorf("kafka at %s: metadata: %w", conn.RemoteAddr(), err)
	}
	return nil
}

// Partitions reads a topic's partitions from the first broker that answers.
func Partitions(ctx context.Context, cfg Config, topic string) ([]kafkago.Partition, error) {
	conn, err := dialAny(ctx, cfg.Brokers)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("kafka at %s: partitions of %s: %w", conn.RemoteAddr(), topic, err)
	}
	return parts, nil
}

// dialAny connects to the first broker of the list that answers, so that
// topic administration works while one broker of a cluster is down.
func dialAny(ctx context.Context, brokers []string) (*kafkago.Conn, error) {
	if len(brokers) == 0 {
		return nil, errors.New("kafka: no brokers configured")
	}
	var errs []error
	for _, b := range brokers {
		conn, err := dial(ctx, b)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func dial(ctx context.Context, addr string) (*kafkago.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&kafkago.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kafka at %s does not answer (start it with deploy/local/services.sh up): %w", addr, err)
	}
	return conn, nil
}
