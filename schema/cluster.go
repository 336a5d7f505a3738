package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// Cluster mode. With Config.Cluster set, the same embedded migrations are
// rendered for a ClickHouse cluster instead of one server:
//
//   - every table T becomes T_local, created ON CLUSTER with the Replicated
//     variant of its engine (one ZooKeeper path per shard, so the replicas
//     of a shard hold the same rows and drop a re-sent identical block), and
//     T itself becomes a Distributed table over T_local, sharded by the key
//     in shardKeys. Every query of the code base keeps the name T and so
//     reads and writes through Distributed, whatever the number of shards;
//   - a materialized view fires on the server where its source block is
//     inserted, so views read T_local and write U_local: the copy sits on
//     the shard of its source rows and replicates with it;
//   - backfill statements (INSERT ... SELECT) stay on the Distributed names,
//     which read every shard and route each row by the target's key.
//
// Writes go through Distributed with insert_distributed_sync = 1 (see
// clusterSettings): an insert returns once every shard has stored its part
// on one replica, so an acknowledged batch is on disk in ClickHouse, never
// only in a Distributed table's local spool, and a retried identical batch
// is dropped by replicated deduplication on that shard.

// shardKeys says how each table's rows are spread across shards. Firm data
// is sharded by the USCC, so one firm lives on one shard and every version
// of a record (keyed by USCC and record id) meets in one ReplacingMergeTree.
// Patent tables are keyed by application number, because an application
// can name several firms and its corrections must meet in one place. A new
// table in a migration needs an entry here; rendering fails without one.
var shardKeys = map[string]string{
	"firms":                "cityHash64(uscc)",
	"consents":             "cityHash64(uscc)",
	"consent_details":      "cityHash64(uscc)",
	"consent_receipts":     "cityHash64(uscc)",
	"access_events":        "cityHash64(uscc)",
	"tax_vat_returns":      "cityHash64(uscc)",
	"tax_cit_annual":       "cityHash64(uscc)",
	"tax_credit_ratings":   "cityHash64(uscc)",
	"tax_arrears":          "cityHash64(uscc)",
	"ops_electricity":      "cityHash64(uscc)",
	"ops_water":            "cityHash64(uscc)",
	"ops_social_insurance": "cityHash64(uscc)",
	"ops_customs":          "cityHash64(uscc)",
	"profile_records":      "cityHash64(uscc)",
	"patent_applicants":    "cityHash64(uscc)",
	"patents":              "cityHash64(application_no)",
	"patent_legal_events":  "cityHash64(application_no)",
	"patent_records":       "cityHash64(application_no)",
	"patent_links":         "cityHash64(firm)",
	"clients":              "cityHash64(id)",
	// One audit chain lives on one shard: verification reads it in order.
	"audit_events":         "chain",
	"audit_events_by_firm": "chain",
	"audit_chain_state":    "chain",
	"audit_digests":        "chain",
}

// LocalSuffix ends the name of a cluster table's per-server part.
const LocalSuffix = "_local"

var (
	createTableStmt = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) \((.*)\) ENGINE = (ReplacingMergeTree|MergeTree)(?:\(([^()]*)\))?(\s.*)$`)
	createViewStmt  = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) TO ([A-Za-z_][A-Za-z0-9_]*) AS\s+(SELECT\s.*)$`)
	insertSelect    = regexp.MustCompile(`(?s)^INSERT INTO [A-Za-z_][A-Za-z0-9_]* \([^()]*\)\s+SELECT\s`)
	fromTable       = regexp.MustCompile(`\bFROM ([A-Za-z_][A-Za-z0-9_]*)\b`)
	joinWord        = regexp.MustCompile(`\bJOIN\b`)
	arrayJoinWord   = regexp.MustCompile(`\bARRAY JOIN\b`)
)

// clusterDDL renders migration statements for a cluster.
type clusterDDL struct {
	cluster  string
	database string
}

// render turns one single-node statement into the statements that build the
// same thing on the cluster. It fails on any statement it does not know how
// to place, so a migration cannot silently create a table on one server only.
func (c clusterDDL) render(stmt string) ([]string, error) {
	stmt = strings.TrimSpace(stmt)
	if m := createTableStmt.FindStringSubmatch(stmt); m != nil {
		return c.table(m[1], m[2], m[3], m[4], m[5])
	}
	if m := createViewStmt.FindStringSubmatch(stmt); m != nil {
		return c.view(m[1], m[2], m[3])
	}
	if insertSelect.MatchString(stmt) {
		return []string{stmt}, nil
	}
	return nil, fmt.Errorf("cluster mode cannot place this statement (only CREATE TABLE ... ENGINE = [Replacing]MergeTree, CREATE MATERIALIZED VIEW ... TO, and INSERT ... SELECT are rendered): %.80s", stmt)
}

func (c clusterDDL) table(name, columns, engine, args, rest string) ([]string, error) {
	key, ok := shardKeys[name]
	if !ok {
		return nil, fmt.Errorf("cluster mode: table %s has no sharding key; add it to shardKeys in schema/cluster.go", name)
	}
	local := name + LocalSuffix
	replicated := fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/%s/%s', '{replica}'", engine, c.database, local)
	if args = strings.TrimSpace(args); args != "" {
		replicated += ", " + args
	}
	replicated += ")"
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s (%s) ENGINE = %s%s", c.database, local, c.cluster, columns, replicated, rest),
		c.distributed(name, key),
	}, nil
}

func (c clusterDDL) distributed(name, key string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %[1]s.%[2]s ON CLUSTER %[3]s AS %[1]s.%[2]s%[4]s ENGINE = Distributed(%[3]s, %[1]s, %[2]s%[4]s, %[5]s)",
		c.database, name, c.cluster, LocalSuffix, key)
}

func (c clusterDDL) view(name, target, query string) ([]string, error) {
	if _, ok := shardKeys[target]; !ok {
		return nil, fmt.Errorf("cluster mode: view %s writes to %s, which is not a known table", name, target)
	}
	froms := fromTable.FindAllStringSubmatch(query, -1)
	joins := len(joinWord.FindAllString(query, -1)) - len(arrayJoinWord.FindAllString(query, -1))
	if len(froms) != 1 || joins != 0 {
		return nil, fmt.Errorf("cluster mode: view %s must read exactly one table and join none, so that it can read the local part of it", name)
	}
	source := froms[0][1]
	if _, ok := shardKeys[source]; !ok {
		return nil, fmt.Errorf("cluster mode: view %s reads %s, which is not a known table", name, source)
	}
	query = fromTable.ReplaceAllString(query, "FROM "+c.database+"."+source+LocalSuffix)
	return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.%s ON CLUSTER %s TO %s.%s%s AS %s",
		c.database, name, c.cluster, c.database, target, LocalSuffix, query)}, nil
}

// migrationsTable creates schema_migrations. On a cluster every server holds
// the whole table (one ZooKeeper path for all shards, replica names unique
// across the cluster), so whichever server a migrating process reaches, it
// sees what any other process applied.
func (c clusterDDL) migrationsTable() string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations ON CLUSTER %s (%s)
		ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/%s/schema_migrations', '{shard}-{replica}') ORDER BY version`,
		c.database, c.cluster, migrationsColumns, c.database)
}

const migrationsColumns = "version UInt32, name String, checksum String, applied_at DateTime"
