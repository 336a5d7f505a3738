package schema

import (
	"regexp"
	"strings"
	"testing"
)

// Every embedded migration must render for a cluster: a table without a
// sharding key, or a statement the renderer cannot place, fails here
// before it fails on a production cluster.
func TestClusterDDL_RendersEveryMigration(t *testing.T) {
	migrations, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ddl := clusterDDL{cluster: "fbc", database: "fbdb"}
	tables := map[string]bool{}
	for _, m := range migrations {
		for i, stmt := range m.Statements {
			out, err := ddl.render(stmt)
			if err != nil {
				t.Fatalf("migration %04d statement %d: %v", m.Version, i+1, err)
			}
			if m := createTableStmt.FindStringSubmatch(stmt); m != nil {
				tables[m[1]] = true
				if len(out) != 2 {
					t.Fatalf("table %s rendered as %d statements, want local + Distributed", m[1], len(out))
				}
				for _, s := range out {
					if !strings.Contains(s, " ON CLUSTER fbc ") {
						t.Errorf("table %s: statement without ON CLUSTER: %.120s", m[1], s)
					}
				}
				if !strings.Contains(out[0], "CREATE TABLE IF NOT EXISTS fbdb."+m[1]+"_local ON CLUSTER fbc (") ||
					!strings.Contains(out[0], "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fbdb/"+m[1]+"_local', '{replica}'") {
					t.Errorf("table %s: local part rendered as %.300s", m[1], out[0])
				}
				if want := "ENGINE = Distributed(fbc, fbdb, " + m[1] + "_local, " + shardKeys[m[1]] + ")"; !strings.HasSuffix(out[1], want) {
					t.Errorf("table %s: Distributed part %q does not end in %q", m[1], out[1], want)
				}
			}
			if m := createViewStmt.FindStringSubmatch(stmt); m != nil {
				if len(out) != 1 || !strings.Contains(out[0], " TO fbdb."+m[2]+"_local AS ") ||
					!regexp.MustCompile(`\bFROM fbdb\.[a-z_]+_local\b`).MatchString(out[0]) {
					t.Errorf("view %s rendered as %q", m[1], out)
				}
			}
		}
	}
	// A sharding key for a table no migration creates is a typo waiting to happen.
	for name := range shardKeys {
		if !tables[name] {
			t.Errorf("shardKeys names %s, which no migration creates", name)
		}
	}
}

func TestClusterDDL_KeepsEngineArguments(t *testing.T) {
	ddl := clusterDDL{cluster: "c", database: "d"}
	out, err := ddl.render("CREATE TABLE IF NOT EXISTS clients (\n  id String,\n  amount Decimal(18, 2),\n  version UInt64\n) ENGINE = ReplacingMergeTree(version)\nORDER BY id\nSETTINGS index_granularity = 256")
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE IF NOT EXISTS d.clients_local ON CLUSTER c (\n  id String,\n  amount Decimal(18, 2),\n  version UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/clients_local', '{replica}', version)\nORDER BY id\nSETTINGS index_granularity = 256"
	if out[0] != want {
		t.Errorf("got\n%s\nwant\n%s", out[0], want)
	}
	if want := "CREATE TABLE IF NOT EXISTS d.clients ON CLUSTER c AS d.clients_local ENGINE = Distributed(c, d, clients_local, cityHash64(id))"; out[1] != want {
		t.Errorf("got\n%s\nwant\n%s", out[1], want)
	}
}

func TestClusterDDL_RefusesWhatItCannotPlace(t *testing.T) {
	ddl := clusterDDL{cluster: "c", database: "d"}
	for _, stmt := range []string{
		"CREATE TABLE IF NOT EXISTS unknown_table (a String) ENGINE = ReplacingMergeTree ORDER BY a",
		"CREATE TABLE IF NOT EXISTS firms (a String) ENGINE = Log",
		"ALTER TABLE firms ADD COLUMN x String",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS v TO profile_records AS SELECT * FROM firms ANY LEFT JOIN consents USING uscc",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS v TO nowhere AS SELECT * FROM firms",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS v AS SELECT * FROM firms",
	} {
		if out, err := ddl.render(stmt); err == nil {
			t.Errorf("rendered %q as %q; want an error", stmt, out)
		}
	}
}
