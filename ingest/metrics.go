package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of the ingest pipelines, labelled by topic.
type Metrics struct {
	Records      *prometheus.CounterVec   // by topic and outcome: stored or dead_letter
	Rows         *prometheus.CounterVec   // canonical rows written
	Retries      *prometheus.CounterVec   // by topic and step
	BatchRows    *prometheus.HistogramVec // rows per flushed batch
	BatchSeconds *prometheus.HistogramVec // time to store and commit one batch
	Lag          *prometheus.GaugeVec     // messages behind the partition end, per reader
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "records_total",
			Help: "Records consumed and committed, by outcome (stored or dead_letter)."}, []string{"topic", "outcome"}),
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "rows_total",
			Help: "Canonical rows written to ClickHouse."}, []string{"topic"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "retries_total",
			Help: "Retried steps of a batch flush (dead letters, insert, commit)."}, []string{"topic", "step"}),
		BatchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "batch_rows",
			Help: "Rows per flushed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}, []string{"topic"}),
		BatchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "batch_seconds",
			Help: "Time to store and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"topic"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "firmbridge", Subsystem: "ingest", Name: "consumer_lag",
			Help: "Messages between the reader's position and the end of its partitions."}, []string{"topic", "worker"}),
	}
	reg.MustRegister(m.Records, m.Rows, m.Retries, m.BatchRows, m.BatchSeconds, m.Lag)
	return m
}
