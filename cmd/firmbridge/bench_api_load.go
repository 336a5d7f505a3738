package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/schema"
)

// benchAPIFirmGroup is how many firms one synth.Firms call makes: synth
// draws names from about 80,000 combinations and slows down near the end,
// so 100k firms come from several seeds, 20,000 at a time.
const benchAPIFirmGroup = 20000

// benchAPIQualifiers keep names distinct across groups: the firms of
// group k > 0 carry a district after the city, as real names often do.
var benchAPIQualifiers = []string{"", "高新区", "自贸区", "滨海新区", "工业园区", "经开区", "科学城", "新城", "港区", "临空区"}

// benchAPIFirms returns n firms with distinct USCCs and names.
func benchAPIFirms(seed int64, n int) []synth.Firm {
	out := make([]synth.Firm, 0, n)
	seen := make(map[string]bool, n)
	for group := 0; len(out) < n; group++ {
		qualifier := fmt.Sprintf("第%d园区", group)
		if group < len(benchAPIQualifiers) {
			qualifier = benchAPIQualifiers[group]
		}
		for _, f := range synth.Firms(seed+int64(group), min(benchAPIFirmGroup, n-len(out))) {
			if seen[f.USCC] {
				continue
			}
			seen[f.USCC] = true
			if qualifier != "" {
				f.Name = strings.Replace(f.Name, f.City, f.City+qualifier, 1)
			}
			out = append(out, f)
		}
	}
	return out
}

// benchLoad is what loading stored.
type benchLoad struct {
	records       int64
	rows          int64
	byTable       map[string]int64
	droppedPatent int64 // applications drawn by two chunks: the later chunk's records are dropped
	inserts       int64
	took          time.Duration
}

// loadBenchData generates every record the firms' providers send over
// months months before end, normalizes them with the connectors registry
// (as the ingest pipelines do, without Kafka) and inserts the rows with
// schema.Store.InsertRows: GOMAXPROCS generating goroutines, one chunk of
// benchFirmChunk firms at a time, and one inserter writing batches of
// batchRows rows. Memory stays bounded by the channel between them.
func loadBenchData(ctx context.Context, store *schema.Store, registry *connectors.Registry, seed int64, firms []synth.Firm, months int,
	end time.Time, batchRows int, timeout time.Duration, bar *progressbar.ProgressBar) (*benchLoad, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	out := &benchLoad{byTable: map[string]int64{}}
	chunks := (len(firms) + benchFirmChunk - 1) / benchFirmChunk
	var next atomic.Int64
	rowsc := make(chan []firmbridge.Row, 4)
	var (
		appsMu sync.Mutex
		apps   = map[string]bool{} // application numbers stored so far
		errMu  sync.Mutex
		errs   []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		cancel()
	}
	ingestedAt := time.Now().UTC().Truncate(time.Second)
	var gen sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		gen.Add(1)
		go func() {
			defer gen.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= chunks || ctx.Err() != nil {
					return
				}
				chunk := firms[i*benchFirmChunk : min((i+1)*benchFirmChunk, len(firms))]
				recs := synth.Generate(seed, chunk, months, end, synth.Options{})
				// Application numbers are unique within one Generate call
				// only: keep the first chunk's patent, drop a later one's.
				mine := map[string]bool{}
				for _, r := range recs {
					if app := benchApplication(r.Envelope); app != "" {
						mine[app] = true
					}
				}
				drop := map[string]bool{}
				appsMu.Lock()
				for app := range mine {
					if apps[app] {
						drop[app] = true
					} else {
						apps[app] = true
					}
				}
				appsMu.Unlock()
				rows := make([]firmbridge.Row, 0, len(recs)*5/4)
				var kept int64
				for _, r := range recs {
					if app := benchApplication(r.Envelope); app != "" && drop[app] {
						continue
					}
					rs, err := registry.Normalize(ctx, r.Envelope, ingestedAt)
					if err != nil {
						fail(fmt.Errorf("bench: normalize %s %s: %w", r.Envelope.Source, r.Envelope.RecordID, err))
						return
					}
					rows = append(rows, rs...)
					kept++
				}
				atomic.AddInt64(&out.records, kept)
				atomic.AddInt64(&out.droppedPatent, int64(len(drop)))
				select {
				case rowsc <- rows:
				case <-ctx.Done():
					return
				}
				_ = bar.Add(len(chunk))
			}
		}()
	}
	go func() { gen.Wait(); close(rowsc) }()

	var batch []firmbridge.Row
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := store.InsertRows(ctx, batch); err != nil {
			return fmt.Errorf("bench: load: %w", err)
		}
		for _, r := range batch {
			out.byTable[r.Table()]++
		}
		out.rows += int64(len(batch))
		out.inserts++
		batch = batch[:0]
		return nil
	}
	for rows := range rowsc {
		batch = append(batch, rows...)
		if len(batch) >= batchRows {
			if err := flush(); err != nil {
				fail(err)
				for range rowsc { // let the generators finish
				}
				break
			}
		}
	}
	if len(errs) == 0 {
		if err := flush(); err != nil {
			fail(err)
		}
	}
	_ = bar.Finish()
	out.took = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: load did not finish within %s: %w", timeout, err)
	}
	return out, nil
}

// benchApplication is the patent application a record is about, from the
// record ids synth gives ("CNIPA-BIB-<app>", "CNIPA-LE-<app>-<code>-<date>"),
// or "".
func benchApplication(env firmbridge.Envelope) string {
	if app, ok := strings.CutPrefix(env.RecordID, "CNIPA-BIB-"); ok {
		return app
	}
	if rest, ok := strings.CutPrefix(env.RecordID, "CNIPA-LE-"); ok {
		app, _, _ := strings.Cut(rest, "-")
		return app
	}
	return ""
}

// Institutions of the bench's consents.
const (
	benchBank      = "BANK-BENCH-001"
	benchOtherBank = "BANK-BENCH-002"
)

// benchConsents describes the consents granted.
type benchConsents struct {
	bank, other, withFloor int
	floor                  time.Time
}

// grantBenchConsents grants benchBank an active consent from every firm
// (every scope, credit_assessment), a quarter of them with an earliest data
// date floor; every other firm also consents to benchOtherBank (tax only,
// loan_monitoring), so that the consent lookup has something to skip. The
// rows go in as consents.SaveConsent writes them, in batches.
func grantBenchConsents(ctx context.Context, store *schema.Store, firms []synth.Firm, floor time.Time) (benchConsents, error) {
	now := time.Now().UTC().Truncate(time.Second)
	out := benchConsents{floor: floor}
	var batch []*firmbridge.Consent
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := store.Conn().PrepareBatch(ctx, "INSERT INTO consents (id, uscc, grantee, scopes, purpose, status, valid_from, expires_at, data_from, created_at, updated_at, updated_by, version)")
		if err != nil {
			return fmt.Errorf("bench: grant consents: %w", err)
		}
		for _, c := range batch {
			var dataFrom *time.Time
			if c.DataFrom != nil {
				d := c.DataFrom.UTC()
				dataFrom = &d
			}
			if err := b.Append(c.ID, c.USCC, c.Grantee, c.Scopes, c.Purpose, c.Status, c.ValidFrom, c.ExpiresAt, dataFrom,
				c.CreatedAt, c.UpdatedAt, c.UpdatedBy, c.Version); err != nil {
				_ = b.Abort()
				return fmt.Errorf("bench: grant consents: %w", err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("bench: grant consents: %w", err)
		}
		batch = batch[:0]
		return nil
	}
	add := func(c *firmbridge.Consent) error {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("bench: consent %s: %w", c.ID, err)
		}
		batch = append(batch, c)
		if len(batch) >= 50000 {
			return flush()
		}
		return nil
	}
	for i, f := range firms {
		c := &firmbridge.Consent{ID: "bench-" + f.USCC + "-" + benchBank, USCC: f.USCC, Grantee: benchBank, Scopes: firmbridge.Scopes,
			Purpose: firmbridge.PurposeCreditAssessment, Status: firmbridge.ConsentActive, ValidFrom: now.Add(-time.Hour),
			ExpiresAt: now.Add(firmbridge.MaxConsentDuration[firmbridge.PurposeCreditAssessment] - time.Hour),
			CreatedAt: now, UpdatedAt: now, UpdatedBy: "bench", Version: firmbridge.VersionOf(now)}
		if i%4 == 3 {
			d := floor
			c.DataFrom = &d
			out.withFloor++
		}
		if err := add(c); err != nil {
			return out, err
		}
		out.bank++
		if i%2 == 1 {
			o := &firmbridge.Consent{ID: "bench-" + f.USCC + "-" + benchOtherBank, USCC: f.USCC, Grantee: benchOtherBank,
				Scopes: []string{firmbridge.ScopeTax}, Purpose: firmbridge.PurposeLoanMonitoring, Status: firmbridge.ConsentActive,
				ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(90 * 24 * time.Hour), CreatedAt: now, UpdatedAt: now,
				UpdatedBy: "bench", Version: firmbridge.VersionOf(now)}
			if err := add(o); err != nil {
				return out, err
			}
			out.other++
		}
	}
	return out, flush()
}

// benchFirmsOf reads back the firms of an existing bench database (--reuse):
// those that granted benchBank a consent.
func benchFirmsOf(ctx context.Context, store *schema.Store) ([]string, error) {
	rows, err := store.Conn().Query(ctx, "SELECT DISTINCT uscc FROM consents WHERE grantee = ? ORDER BY uscc", benchBank)
	if err != nil {
		return nil, fmt.Errorf("bench: read the firms of %s: %w", store.Database(), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("bench: read the firms of %s: %w", store.Database(), err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bench: read the firms of %s: %w", store.Database(), err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: database %s holds no consents to %s: load it with --keep first", store.Database(), benchBank)
	}
	return out, nil
}

// benchTableSizes reads how many rows and parts, and how many bytes on
// disk, each table of the database holds.
func benchTableSizes(ctx context.Context, store *schema.Store) (string, error) {
	rows, err := store.Conn().Query(ctx, `SELECT table, sum(rows), count(), sum(bytes) FROM system.parts
		WHERE database = ? AND active GROUP BY table ORDER BY table`, store.Database())
	if err != nil {
		return "", fmt.Errorf("bench: read table sizes: %w", err)
	}
	defer rows.Close()
	var parts []string
	var total uint64
	for rows.Next() {
		var table string
		var n, count, bytes uint64
		if err := rows.Scan(&table, &n, &count, &bytes); err != nil {
			return "", fmt.Errorf("bench: read table sizes: %w", err)
		}
		total += bytes
		parts = append(parts, fmt.Sprintf("%s %d rows/%d parts", table, n, count))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("bench: read table sizes: %w", err)
	}
	return fmt.Sprintf("%.0f MB on disk; %s", float64(total)/1e6, strings.Join(parts, ", ")), nil
}
