package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
	"github.com/firmbridge/firmbridge/schema"
)

// BenchmarkInsertRows measures the insert side of a pipeline worker
// without a server: the rows of the synth mix, grouped by table as
// Store.InsertRows groups them, appended with schema.AppendRows to
// clickhouse-go blocks of the column types the migrations declare. One op
// is the whole set; ns/row is per canonical row.
func BenchmarkInsertRows(b *testing.B) {
	reg, err := all.Registry()
	if err != nil {
		b.Fatal(err)
	}
	types := migrationTypes(b)
	end := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	groups := map[string][]firmbridge.Row{}
	var order []string
	n := 0
	for _, env := range synth.Envelopes(1, synth.Firms(1, 40), 24, end, synth.Options{}) {
		rows, err := reg.Normalize(context.Background(), env, end)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			if _, ok := groups[r.Table()]; !ok {
				order = append(order, r.Table())
			}
			groups[r.Table()] = append(groups[r.Table()], r)
			n++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, table := range order {
			rows := groups[table]
			blk := proto.NewBlock()
			blk.ServerContext.Timezone = time.UTC
			for _, c := range rows[0].Columns() {
				typ, ok := types[table+"."+c]
				if !ok {
					b.Fatalf("no type for %s.%s", table, c)
				}
				if err := blk.AddColumn(c, column.Type(typ)); err != nil {
					b.Fatal(err)
				}
			}
			if err := schema.AppendRows(blk, rows); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
}

// migrationTypes reads table.column → type from the canonical tables'
// migrations (one column per line, as they are written).
func migrationTypes(b *testing.B) map[string]string {
	types := map[string]string{}
	for _, n := range []string{"0001_core.sql", "0002_tax.sql", "0003_patent.sql", "0004_operations.sql"} {
		body, err := os.ReadFile(filepath.Join("..", "schema", "migrations", n))
		if err != nil {
			b.Fatal(err)
		}
		table := ""
		for _, line := range strings.Split(string(body), "\n") {
			l := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(l, "CREATE TABLE IF NOT EXISTS "):
				table = strings.Fields(l)[5]
			case strings.HasPrefix(l, ")"):
				table = ""
			case table != "" && l != "" && !strings.HasPrefix(l, "--"):
				name, typ, _ := strings.Cut(strings.TrimSuffix(l, ","), " ")
				types[table+"."+name] = strings.TrimSpace(typ)
			}
		}
	}
	return types
}
