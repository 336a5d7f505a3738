package api

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec   // by route, method and status
	Latency  *prometheus.HistogramVec // by route and method
	Denials  *prometheus.CounterVec   // access events denied, by reason code
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "api", Name: "requests_total",
			Help: "HTTP requests by route template, method and status."}, []string{"route", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "firmbridge", Subsystem: "api", Name: "request_seconds",
			Help: "HTTP request latency by route template.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route", "method"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "firmbridge", Subsystem: "api", Name: "access_denied_total",
			Help: "Requests for firm data or consents that were denied, by reason code."}, []string{"reason"}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.Denials)
	return m
}

// observe is the middleware that feeds Requests and Latency. Routes are
// labelled by template (/v1/firms/:uscc/profile), never by raw path, so
// the label set stays small.
func (m *Metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.Requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
	m.Latency.WithLabelValues(route, c.Request.Method).Observe(time.Since(start).Seconds())
}
