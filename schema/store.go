// Package schema owns firmbridge's ClickHouse schema: the ordered, embedded
// migrations and the Store that reads and writes the canonical tables.
package schema

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/firmbridge/firmbridge"
)

// Config says where ClickHouse is.
type Config struct {
	// Addr is host:port of the native protocol, or several, comma-separated:
	// servers are tried in order, so a client moves to the next replica when
	// one is down.
	Addr     string
	Database string
	Username string
	Password string
	// Cluster names a cluster in the servers' remote_servers. Set, the
	// migrations create replicated and Distributed tables ON CLUSTER
	// (cluster.go); empty, one server holds everything.
	Cluster string
}

// Store reads and writes firmbridge's tables in one ClickHouse database.
type Store struct {
	conn     driver.Conn
	database string
	cluster  string
	Logger   *slog.Logger
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to ClickHouse, creating the database if it does not exist,
// and checks that the server answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if !identifier.MatchString(cfg.Database) {
		return nil, fmt.Errorf("clickhouse database name %q is not a plain identifier", cfg.Database)
	}
	if cfg.Cluster != "" && !identifier.MatchString(cfg.Cluster) {
		return nil, fmt.Errorf("clickhouse cluster name %q is not a plain identifier", cfg.Cluster)
	}
	if cfg.Username == "" {
		cfg.Username = "default"
	}
	// The database may not exist yet: create it through a connection to "default".
	boot, err := connect(cfg, "default")
	if err != nil {
		return nil, err
	}
	if cfg.Cluster != "" {
		if err := checkClusterSettings(ctx, boot, cfg.Addr); err != nil {
			boot.Close()
			return nil, err
		}
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database+onCluster(cfg.Cluster))
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: create database %s: %w", cfg.Addr, cfg.Database, err)
	}
	conn, err := connect(cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s: %w", cfg.Addr, err)
	}
	return &Store{conn: conn, database: cfg.Database, cluster: cfg.Cluster, Logger: slog.Default()}, nil
}

// Addrs splits a comma-separated list of servers.
func Addrs(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// clusterSettings apply to every query in cluster mode: an insert into a
// Distributed table returns only once each shard stored its rows, not
// when they are spooled on the server that took the insert.
var clusterSettings = clickhouse.Settings{"insert_distributed_sync": 1}

// serverClusterSettings must be set in the servers' user profile: the
// native protocol of ClickHouse 18.16 carries no string settings from this
// client. With 'global', an IN or JOIN subquery over a Distributed table
// runs once and its result goes to every shard, which is right whatever the
// tables' sharding keys are (the default, 'deny', refuses such queries as
// soon as a cluster has two shards).
var serverClusterSettings = map[string]string{"distributed_product_mode": "global"}

// checkClusterSettings fails unless the server runs queries of this
// connection with serverClusterSettings.
func checkClusterSettings(ctx context.Context, conn driver.Conn, addr string) error {
	for name, want := range serverClusterSettings {
		var got string
		if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = ?", name).Scan(&got); err != nil {
			return fmt.Errorf("clickhouse at %s: read setting %s: %w", addr, name, err)
		}
		if got != want {
			return fmt.Errorf("clickhouse at %s: cluster mode needs %s = '%s' in the user profile of the servers (it is '%s'); see docs/DEPLOY.md", addr, name, want, got)
		}
	}
	return nil
}

func connect(cfg Config, database string) (driver.Conn, error) {
	opts := &clickhouse.Options{
		Addr:             Addrs(cfg.Addr),
		Auth:             clickhouse.Auth{Database: database, Username: cfg.Username, Password: cfg.Password},
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:      5 * time.Second,
		MaxOpenConns:     16,
		MaxIdleConns:     8,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	}
	if cfg.Cluster != "" {
		opts.Settings = clusterSettings
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: %w", cfg.Addr, err)
	}
	if err := conn.Ping(context.Background()); err != nil {
		conn.Close()
		hint := "start it with deploy/local/services.sh up"
		if cfg.Cluster != "" {
			hint = "start the local cluster with deploy/local/cluster.sh up"
		}
		return nil, fmt.Errorf("clickhouse at %s does not answer (%s): %w", cfg.Addr, hint, err)
	}
	return conn, nil
}

func onCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + cluster
}

// Cluster names the ClickHouse cluster the store's tables span; empty on one server.
func (s *Store) Cluster() string { return s.cluster }

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Database names the database the store works in.
func (s *Store) Database() string { return s.database }

// Conn exposes the driver connection for tests and benchmarks that need raw SQL.
func (s *Store) Conn() driver.Conn { return s.conn }

// DropDatabase removes the store's whole database. Tests use it to clean up
// their scratch databases.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.database+onCluster(s.cluster))
}

// InsertRows writes rows in one batch per table and column list. It returns
// only after ClickHouse acknowledged every batch; on error some batches may
// have been written, which is safe because every table is keyed so that a
// row written again replaces itself.
func (s *Store) InsertRows(ctx context.Context, rows []firmbridge.Row) error {
	for _, g := range GroupRows(rows) {
		if err := s.insertGroup(ctx, g.Table, g.Columns, g.Rows); err != nil {
			return err
		}
	}
	return nil
}

// RowGroup is rows of one table and column list, in their order.
type RowGroup struct {
	Table   string
	Columns []string
	Rows    []firmbridge.Row
}

// GroupRows splits rows into one group per table and column list, in the
// order each first appears. A batch holds a few tables, and a row type
// returns the same column slice every time: a linear scan that compares
// slices by identity first costs no allocation per row.
func GroupRows(rows []firmbridge.Row) []RowGroup {
	var groups []RowGroup
	last := -1
	for _, r := range rows {
		table, cols := r.Table(), r.Columns()
		if last < 0 || groups[last].Table != table || !sameColumns(groups[last].Columns, cols) {
			last = -1
			for i := range groups {
				if groups[i].Table == table && sameColumns(groups[i].Columns, cols) {
					last = i
					break
				}
			}
			if last < 0 {
				groups = append(groups, RowGroup{Table: table, Columns: cols})
				last = len(groups) - 1
			}
		}
		groups[last].Rows = append(groups[last].Rows, r)
	}
	return groups
}

func sameColumns(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b)
}

func (s *Store) insertGroup(ctx context.Context, table string, columns []string, rows []firmbridge.Row) error {
	if !identifier.MatchString(table) {
		return fmt.Errorf("insert: table name %q is not a plain identifier", table)
	}
	// An explicit column list is required: ClickHouse 18.16 with clickhouse-go
	// fails to append to a batch prepared without one.
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+strings.Join(columns, ", ")+")")
	if err != nil {
		return fmt.Errorf("insert into %s: prepare: %w", table, err)
	}
	if err := AppendRows(batch, rows); err != nil {
		_ = batch.Abort()
		return fmt.Errorf("insert into %s: append: %w", table, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert into %s: send %d rows: %w", table, len(rows), err)
	}
	return nil
}

// RowAppender takes one row's values in column order: a clickhouse-go
// batch, or a proto.Block for benchmarks without a server.
type RowAppender interface {
	Append(v ...any) error
}

// AppendRows appends rows, all of one table and column list, to a batch:
// the insert side's CPU work before the batch is sent.
func AppendRows(batch RowAppender, rows []firmbridge.Row) error {
	for _, r := range rows {
		if err := batch.Append(r.Values()...); err != nil {
			return err
		}
	}
	return nil
}
