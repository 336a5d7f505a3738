package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// latencyRun is one measure: every request's latency, in the order the
// requests were started.
type latencyRun struct {
	measure  string
	lat      []time.Duration // one per completed request
	errors   int64
	firstErr error
	took     time.Duration // from the first request started to the last one finished
	bytes    int64         // response bytes, for the API
	cpu      string        // CPU per profile: this process / ClickHouse / Kafka, in ms
	baseline bool
	info     bool
}

func (r *latencyRun) perSecond() float64 {
	if r.took <= 0 {
		return 0
	}
	return float64(len(r.lat)) / r.took.Seconds()
}

// quantile is the q-quantile of the latencies (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// benchOrder is the sequence of firms the clients ask for: uniformly
// random over every loaded firm, the same for every measure of a run.
func benchOrder(seed int64, firms []string, n int) []string {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xa91))
	out := make([]string, n)
	for i := range out {
		out[i] = firms[rng.IntN(len(firms))]
	}
	return out
}

// runClients calls do for each firm of order, from concurrency goroutines,
// until every firm is done or limit has passed, and times each call.
// A call's error is counted, not fatal; the first is kept.
func runClients(ctx context.Context, name string, concurrency int, order []string, limit time.Duration, bar *progressbar.ProgressBar,
	do func(ctx context.Context, uscc string) (int64, error)) *latencyRun {
	run := &latencyRun{measure: name}
	lat := make([]time.Duration, len(order))
	done := make([]bool, len(order))
	var next atomic.Int64
	var bytes, errs atomic.Int64
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(limit)
	var last atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(order) || ctx.Err() != nil || time.Now().After(deadline) {
					return
				}
				t0 := time.Now()
				n, err := do(ctx, order[i])
				t1 := time.Now()
				lat[i], done[i] = t1.Sub(t0), true
				if err != nil {
					errs.Add(1)
					errOnce.Do(func() { run.firstErr = err })
				}
				bytes.Add(n)
				for {
					cur := last.Load()
					if t1.UnixNano() <= cur || last.CompareAndSwap(cur, t1.UnixNano()) {
						break
					}
				}
				if bar != nil {
					_ = bar.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bar != nil {
		_ = bar.Finish()
	}
	for i, ok := range done {
		if ok {
			run.lat = append(run.lat, lat[i])
		}
	}
	if l := last.Load(); l > 0 {
		run.took = time.Unix(0, l).Sub(start)
	}
	run.errors, run.bytes = errs.Load(), bytes.Load()
	return run
}

// httpProfile returns a client of the API's profile route.
func httpProfile(client *http.Client, base, token, purpose string) func(ctx context.Context, uscc string) (int64, error) {
	return func(ctx context.Context, uscc string) (int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/firms/"+uscc+"/profile?purpose="+purpose, nil)
		if err != nil {
			return 0, fmt.Errorf("profile %s: %w", uscc, err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("profile %s: %w", uscc, err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return n, fmt.Errorf("profile %s: read body: %w", uscc, err)
		}
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("profile %s: status %d", uscc, resp.StatusCode)
		}
		return n, nil
	}
}

// benchAPITable renders the measures as a Markdown table; the ratios
// compare each measure with the baseline.
func benchAPITable(runs []*latencyRun) string {
	var base *latencyRun
	for _, r := range runs {
		if r.baseline {
			base = r
		}
	}
	var baseSorted []time.Duration
	if base != nil {
		baseSorted = slices.Sorted(slices.Values(base.lat))
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	var b strings.Builder
	b.WriteString("| measure | requests | errors | seconds | profiles/s | p50 ms | p90 ms | p99 ms | max ms | CPU ms per profile: bench process / ClickHouse / Kafka | p50 vs baseline | p99 vs baseline | profiles/s vs baseline |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range runs {
		sorted := slices.Sorted(slices.Values(r.lat))
		p50, p99 := quantile(sorted, 0.50), quantile(sorted, 0.99)
		r50, r99, rps := "", "", ""
		if base != nil && !r.info && len(baseSorted) > 0 && base.perSecond() > 0 {
			r50 = fmt.Sprintf("%.2f", float64(p50)/float64(quantile(baseSorted, 0.50)))
			r99 = fmt.Sprintf("%.2f", float64(p99)/float64(quantile(baseSorted, 0.99)))
			rps = fmt.Sprintf("%.2f", r.perSecond()/base.perSecond())
		}
		maxLat := time.Duration(0)
		if len(sorted) > 0 {
			maxLat = sorted[len(sorted)-1]
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.measure, len(r.lat), r.errors, r.took.Seconds(),
			r.perSecond(), ms(p50), ms(quantile(sorted, 0.90)), ms(p99), ms(maxLat), r.cpu, r50, r99, rps)
	}
	return b.String()
}
