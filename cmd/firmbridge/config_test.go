package main

import (
	"io"
	"strings"
	"testing"
)

// A whole-number variable that is not one is refused, with its text,
// unless the command line sets the flag it feeds.
func TestConfig_BadEnvironmentNumber(t *testing.T) {
	t.Setenv("FIRMBRIDGE_KAFKA_PARTITIONS", "four")
	fs, cfg := newFlags("test", io.Discard)
	err := cfg.parse(fs, nil)
	if err == nil || !strings.Contains(err.Error(), `FIRMBRIDGE_KAFKA_PARTITIONS="four"`) || !strings.Contains(err.Error(), "--kafka-partitions") {
		t.Fatalf("parse: %v, want the variable, its text and its flag named", err)
	}

	fs, cfg = newFlags("test", io.Discard)
	if err := cfg.parse(fs, []string{"--kafka-partitions", "6"}); err != nil || cfg.KafkaPartitions != 6 {
		t.Fatalf("with the flag given: %v, partitions %d, want no error and 6", err, cfg.KafkaPartitions)
	}

	t.Setenv("FIRMBRIDGE_KAFKA_PARTITIONS", "8")
	fs, cfg = newFlags("test", io.Discard)
	if err := cfg.parse(fs, nil); err != nil || cfg.KafkaPartitions != 8 {
		t.Fatalf("a valid variable: %v, partitions %d, want 8", err, cfg.KafkaPartitions)
	}
}
