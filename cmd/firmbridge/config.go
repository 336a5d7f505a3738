package main

import (
	"flag"
	"os"
	"strings"
	"time"

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
	KafkaBrokers   string
	TopicPrefix    string
	KeyFile        string
	Issuer         string
	Audience       string
	LogLevel       string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv("FIRMBRIDGE_" + name); ok && v != "" {
		return v
	}
	return def
}

// register adds the shared flags to fs.
func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "addr", env("HTTP_ADDR", "127.0.0.1:8080"), "API listen address (FIRMBRIDGE_HTTP_ADDR)")
	fs.StringVar(&c.ClickHouseAddr, "clickhouse", env("CLICKHOUSE_ADDR", "127.0.0.1:19000"), "ClickHouse native address (FIRMBRIDGE_CLICKHOUSE_ADDR)")
	fs.StringVar(&c.ClickHouseDB, "clickhouse-db", env("CLICKHOUSE_DB", "firmbridge"), "ClickHouse database (FIRMBRIDGE_CLICKHOUSE_DB)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", env("CLICKHOUSE_USER", "default"), "ClickHouse user (FIRMBRIDGE_CLICKHOUSE_USER)")
	c.ClickHousePass = env("CLICKHOUSE_PASSWORD", "") // environment only: flags show up in ps
	fs.StringVar(&c.KafkaBrokers, "kafka", env("KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka bootstrap brokers, comma-separated (FIRMBRIDGE_KAFKA_BROKERS)")
	fs.StringVar(&c.TopicPrefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of every Kafka topic name, to share a cluster between environments (FIRMBRIDGE_TOPIC_PREFIX)")
	fs.StringVar(&c.KeyFile, "key-file", env("KEY_FILE", ".local/keys/jwt-signing.pem"), "Ed25519 PKCS#8 PEM token signing key (FIRMBRIDGE_KEY_FILE)")
	fs.StringVar(&c.Issuer, "issuer", env("ISSUER", "firmbridge"), "token issuer, iss (FIRMBRIDGE_ISSUER)")
	fs.StringVar(&c.Audience, "audience", env("AUDIENCE", "firmbridge-api"), "token audience, aud (FIRMBRIDGE_AUDIENCE)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (FIRMBRIDGE_LOG_LEVEL)")
}

func (c *Config) schema() schema.Config {
	return schema.Config{Addr: c.ClickHouseAddr, Database: c.ClickHouseDB, Username: c.ClickHouseUser, Password: c.ClickHousePass}
}

func (c *Config) kafka() kafka.Config {
	var brokers []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return kafka.Config{Brokers: brokers, TopicPrefix: c.TopicPrefix}
}

const defaultTokenTTL = time.Hour
