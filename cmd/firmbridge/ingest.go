package main

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/ingest"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg := newFlags("ingest", stderr)
	group := fs.String("group", "firmbridge-ingest", "Kafka consumer group id prefix")
	workers := fs.Int("workers", 1, "consumers per topic in the group")
	batchRows := fs.Int("batch-rows", 50000, "flush a batch at this many rows")
	batchWait := fs.Duration("batch-wait", time.Second, "or this long after its first record")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel)
	store, err := openAndMigrate(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	store.Logger = logger
	registry, err := all.Registry()
	if err != nil {
		return err
	}
	brokers := cfg.kafka().Brokers
	var pipelines []*ingest.Pipeline
	for _, d := range firmbridge.Domains {
		pipelines = append(pipelines, &ingest.Pipeline{
			Brokers: brokers, Topic: firmbridge.RawTopic(d), GroupID: *group + "." + d,
			DeadLetterTopic: firmbridge.DeadLetterTopic(d), Decode: ingest.EnvelopeDecoder(registry), Sink: store,
			Workers: *workers, BatchRows: *batchRows, BatchWait: *batchWait, Logger: logger,
		})
	}
	pipelines = append(pipelines, &ingest.Pipeline{
		Brokers: brokers, Topic: firmbridge.TopicAuditAccess, GroupID: *group + ".audit",
		DeadLetterTopic: firmbridge.DeadLetterTopic("audit"), Decode: ingest.AccessEventDecoder(), Sink: store,
		Workers: 1, BatchRows: *batchRows, BatchWait: *batchWait, Logger: logger,
	})
	// One pipeline failing stops them all, so the process exits and its
	// supervisor restarts it rather than running half an ingest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(pipelines))
	for i, p := range pipelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = p.Run(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
