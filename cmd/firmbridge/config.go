package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/api"
	"github.com/firmbridge/firmbridge/kafka"
	"github.com/firmbridge/firmbridge/schema"
)

// Config is every setting of the binary. Each has a flag and an environment
// variable FIRMBRIDGE_<NAME>; the flag wins. Defaults match deploy/local.
type Config struct {
	HTTPAddr       string
	ClickHouseAddr string
	ClickHouseDB   string
	ClickHouseUser string
	ClickHousePass string
	// ClickHouseCluster names the cluster of remote_servers that migrations
	// create tables on (replicated and Distributed); empty for one server.
	ClickHouseCluster string
	KafkaBrokers      string
	// New topics' partitions, replication factor and min.insync.replicas
	// (0: broker default for the last).
	KafkaPartitions        int
	KafkaReplicationFactor int
	KafkaMinInsync         int
	TopicPrefix            string
	KeyFile                string
	Issuer                 string
	Audience               string
	LogLevel               string
	// Authentication and limits of the API (see apiLimits).
	VerifyKeyFiles string
	ClientTokenTTL time.Duration
	MaxBodyBytes   int64
	RateLimits     map[string]*string // by role
	// AuditKeyFile is the Ed25519 key that signs audit digests; empty means
	// audit-signing.pem next to KeyFile (see auditKeyFile).
	AuditKeyFile string

	badEnv []badEnv // see parse
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("FIRMBRIDGE_" + name); ok && v != "" {
		return v
	}
	return def
}

// envInt is env for a whole number, the default of flag. A value that is
// not one is added to bad, for Config.parse to refuse unless the flag is
// given.
func envInt(name, flag string, def int, bad *[]badEnv) int {
	v := env(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		*bad = append(*bad, badEnv{flag: flag, err: fmt.Errorf("FIRMBRIDGE_%s=%q is not a whole number (it sets --%s)", name, v, flag)})
		return def
	}
	return n
}

// badEnv is an environment variable whose value a flag could not take.
type badEnv struct {
	flag string
	err  error
}

// parse parses args into fs, then refuses the environment variables that
// were not valid for a flag the command line did not set.
func (c *Config) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for _, b := range c.badEnv {
		if !given[b.flag] {
			errs = append(errs, b.err)
		}
	}
	return errors.Join(errs...)
}

// register adds the shared flags to fs.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "addr", env("HTTP_ADDR", "127.0.0.1:8080"), "API listen address (FIRMBRIDGE_HTTP_ADDR)")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse", env("CLICKHOUSE_ADDR", "127.0.0.1:19000"), "ClickHouse native address, or several comma-separated replicas tried in order (FIRMBRIDGE_CLICKHOUSE_ADDR)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", env("CLICKHOUSE_CLUSTER", ""), "ClickHouse cluster (remote_servers) for replicated, Distributed tables; empty for one server (FIRMBRIDGE_CLICKHOUSE_CLUSTER)")
	fs.StringVar(&c.ClickHouseDB, "clickhouse-db", env("CLICKHOUSE_DB", "firmbridge"), "ClickHouse database (FIRMBRIDGE_CLICKHOUSE_DB)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", env("CLICKHOUSE_USER", "default"), "ClickHouse user (FIRMBRIDGE_CLICKHOUSE_USER)")
	c.ClickHousePass = env("CLICKHOUSE_PASSWORD", "") // environment only: flags show up in ps
	fs.StringVar(&c.KafkaBrokers, "kafka", env("KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka bootstrap brokers, comma-separated (FIRMBRIDGE_KAFKA_BROKERS)")
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", envInt("KAFKA_PARTITIONS", "kafka-partitions", 4, &c.badEnv), "partitions of the topics firmbridge creates: the most ingest workers (or audit chains) that share a topic; existing topics keep theirs (FIRMBRIDGE_KAFKA_PARTITIONS)")
	fs.IntVar(&c.KafkaReplicationFactor, "kafka-replication-factor", envInt("KAFKA_REPLICATION_FACTOR", "kafka-replication-factor", 1, &c.badEnv), "replication factor of the topics firmbridge creates (FIRMBRIDGE_KAFKA_REPLICATION_FACTOR)")
	fs.IntVar(&c.KafkaMinInsync, "kafka-min-insync-replicas", envInt("KAFKA_MIN_INSYNC_REPLICAS", "kafka-min-insync-replicas", 0, &c.badEnv), "min.insync.replicas of the topics firmbridge creates; 0 leaves the broker default (FIRMBRIDGE_KAFKA_MIN_INSYNC_REPLICAS)")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of every Kafka topic name, to share a cluster between environments (FIRMBRIDGE_TOPIC_PREFIX)")
	fs.StringVar(&c.KeyFile, "key-file", env("KEY_FILE", ".local/keys/jwt-signing.pem"), "Ed25519 PKCS#8 PEM token signing key (FIRMBRIDGE_KEY_FILE)")
	fs.StringVar(&c.Issuer, "issuer", env("ISSUER", "firmbridge"), "token issuer, iss (FIRMBRIDGE_ISSUER)")
	fs.StringVar(&c.Audience, "audience", env("AUDIENCE", "firmbridge-api"), "token audience, aud (FIRMBRIDGE_AUDIENCE)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (FIRMBRIDGE_LOG_LEVEL)")
	c.registerLimits(fs)
	fs.StringVar(&c.AuditKeyFile, "audit-key-file", env("AUDIT_KEY_FILE", ""), "Ed25519 PKCS#8 PEM key that signs audit digests; default audit-signing.pem in the directory of --key-file, i.e. .local/keys/audit-signing.pem (FIRMBRIDGE_AUDIT_KEY_FILE)")
}

// auditKeyFile is the audit signing key's path. By default it sits next to
// the token key, so keygen and ingest agree on it whatever their working
// directory when FIRMBRIDGE_KEY_FILE is absolute (as deploy/local sets it).
func (c *Config) auditKeyFile() string {
	if c.AuditKeyFile != "" {
		return c.AuditKeyFile
	}
	return filepath.Join(filepath.Dir(c.KeyFile), "audit-signing.pem")
}

// defaultRateLimits are per institution and role: N/s, N/m or N/h with an
// optional :BURST, or off.
var defaultRateLimits = map[string]string{
	"bank": "100/s:200", "enterprise": "10/s:20", "regulator": "50/s:100", "provider": "20/s:40", "admin": "5/s:10",
}

func (c *Config) registerLimits(fs *flag.FlagSet) {
	fs.StringVar(&c.VerifyKeyFiles, "verify-key-files", env("VERIFY_KEY_FILES", ""), "comma-separated PEM keys (public or private) whose tokens stay valid during a key rotation (FIRMBRIDGE_VERIFY_KEY_FILES)")
	fs.Func("client-token-ttl", "lifetime of client-credentials tokens, at most 24h; default 1h (FIRMBRIDGE_CLIENT_TOKEN_TTL)", func(v string) error {
		d, err := time.ParseDuration(v)
		c.ClientTokenTTL = d
		return err
	})
	fs.Func("max-body-bytes", "largest JSON request body under /v1, in bytes; default 1048576 (FIRMBRIDGE_MAX_BODY_BYTES)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.MaxBodyBytes = n
		return err
	})
	c.RateLimits = map[string]*string{}
	for _, role := range firmbridge.Roles {
		name := "RATE_LIMIT_" + strings.ToUpper(role)
		c.RateLimits[role] = fs.String("rate-limit-"+role, env(name, defaultRateLimits[role]),
			"requests per "+role+" institution: N/s, N/m or N/h, optionally :BURST, or off (FIRMBRIDGE_"+name+")")
	}
}

// apiLimits reads the limit settings, environment first, then flags.
func (c *Config) apiLimits() (rates map[string]api.Rate, ttl time.Duration, maxBody int64, err error) {
	ttl, maxBody = c.ClientTokenTTL, c.MaxBodyBytes
	if ttl == 0 {
		if ttl, err = time.ParseDuration(env("CLIENT_TOKEN_TTL", "1h")); err != nil {
			return nil, 0, 0, fmt.Errorf("FIRMBRIDGE_CLIENT_TOKEN_TTL: %w", err)
		}
	}
	if ttl < time.Second || ttl > api.MaxTokenTTL {
		return nil, 0, 0, fmt.Errorf("client token ttl %s: must be between 1s and 24h", ttl)
	}
	if maxBody == 0 {
		if maxBody, err = strconv.ParseInt(env("MAX_BODY_BYTES", strconv.FormatInt(api.DefaultMaxBodyBytes, 10)), 10, 64); err != nil {
			return nil, 0, 0, fmt.Errorf("FIRMBRIDGE_MAX_BODY_BYTES: %w", err)
		}
	}
	if maxBody <= 0 {
		return nil, 0, 0, fmt.Errorf("max body bytes %d: must be positive", maxBody)
	}
	rates = map[string]api.Rate{}
	for role, spec := range c.RateLimits {
		r, err := api.ParseRate(*spec)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("rate limit of %s (--rate-limit-%s, FIRMBRIDGE_RATE_LIMIT_%s): %w", role, role, strings.ToUpper(role), err)
		}
		rates[role] = r
	}
	return rates, ttl, maxBody, nil
}

func (c *Config) schema() schema.Config {
	return schema.Config{Addr: c.ClickHouseAddr, Database: c.ClickHouseDB, Username: c.ClickHouseUser, Password: c.ClickHousePass, Cluster: c.ClickHouseCluster}
}

func (c *Config) kafka() kafka.Config {
	var brokers []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return kafka.Config{Brokers: brokers, TopicPrefix: c.TopicPrefix,
		Partitions: c.KafkaPartitions, ReplicationFactor: c.KafkaReplicationFactor, MinInsyncReplicas: c.KafkaMinInsync}
}

const defaultTokenTTL = time.Hour
