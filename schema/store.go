// Package schema owns firmbridge's ClickHouse schema: the ordered, embedded
// migrations and the Store that reads and writes the canonical tables.
package schema

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/firmbridge/firmbridge"
)

// Config says where ClickHouse is.
type Config struct {
	Addr     string // host:port of the native protocol
	Database string
	Username string
	Password string
}

// Store reads and writes firmbridge's tables in one ClickHouse database.
type Store struct {
	conn     driver.Conn
	database string
	Logger   *slog.Logger
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open connects to ClickHouse, creating the database if it does not exist,
// and checks that the server answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if !identifier.MatchString(cfg.Database) {
		return nil, fmt.Errorf("clickhouse database name %q is not a plain identifier", cfg.Database)
	}
	if cfg.Username == "" {
		cfg.Username = "default"
	}
	// The database may not exist yet: create it through a connection to "default".
	boot, err := connect(cfg.Addr, "default", cfg.Username, cfg.Password)
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: create database %s: %w", cfg.Addr, cfg.Database, err)
	}
	conn, err := connect(cfg.Addr, cfg.Database, cfg.Username, cfg.Password)
	if err != nil {
		return nil, err
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s: %w", cfg.Addr, err)
	}
	return &Store{conn: conn, database: cfg.Database, Logger: slog.Default()}, nil
}

func connect(addr, database, user, password string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:             []string{addr},
		Auth:             clickhouse.Auth{Database: database, Username: user, Password: password},
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout:      5 * time.Second,
		MaxOpenConns:     16,
		MaxIdleConns:     8,
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse at %s: %w", addr, err)
	}
	if err := conn.Ping(context.Background()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse at %s does not answer (start it with deploy/local/services.sh up): %w", addr, err)
	}
	return conn, nil
}

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }

// Database names the database the store works in.
func (s *Store) Database() string { return s.database }

// Conn exposes the driver connection for tests and benchmarks that need raw SQL.
func (s *Store) Conn() driver.Conn { return s.conn }

// DropDatabase removes the store's whole database. Tests use it to clean up
// their scratch databases.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.database)
}

// InsertRows writes rows in one batch per table and column list. It returns
// only after ClickHouse acknowledged every batch; on error some batches may
// have been written, which is safe because every table is keyed so that a
// row written again replaces itself.
func (s *Store) InsertRows(ctx context.Context, rows []firmbridge.Row) error {
	type group struct {
		table   string
		columns []string
		rows    []firmbridge.Row
	}
	var order []string
	groups := map[string]*group{}
	for _, r := range rows {
		cols := r.Columns()
		key := r.Table() + "(" + strings.Join(cols, ",") + ")"
		g, ok := groups[key]
		if !ok {
			g = &group{table: r.Table(), columns: cols}
			groups[key] = g
			order = append(order, key)
		}
		g.rows = append(g.rows, r)
	}
	for _, key := range order {
		g := groups[key]
		if err := s.insertGroup(ctx, g.table, g.columns, g.rows); err != nil {
			return err
		}
	}
	return nil
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
	for _, r := range rows {
		if err := batch.Append(r.Values()...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("insert into %s: append: %w", table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert into %s: send %d rows: %w", table, len(rows), err)
	}
	return nil
}
