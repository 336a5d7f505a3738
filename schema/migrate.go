package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one ordered schema change.
type Migration struct {
	Version    int
	Name       string
	Checksum   string
	Statements []string
}

// Migrations returns the embedded migrations in order. File names are
// NNNN_name.sql; each file is a list of ';'-terminated statements.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, path := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must look like 0001_name.sql", path)
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, path, version)
		}
		seen[version] = path
		body, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", path, err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: version, Name: name, Checksum: hex.EncodeToString(sum[:]), Statements: splitStatements(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// splitStatements cuts a migration file at lines ending in ';', dropping
// comment-only lines. Migrations keep ';' out of string literals.
func splitStatements(body string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			stmts = append(stmts, stmt)
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// AppliedMigration is a row of the schema_migrations table.
type AppliedMigration struct {
	Version   int
	Name      string
	Checksum  string
	AppliedAt time.Time
}

// Migrate applies every embedded migration not yet recorded in
// schema_migrations, in order, and returns the versions it applied. Every
// statement is idempotent (IF NOT EXISTS), so a run interrupted half-way, or
// two processes migrating at once, leave a correct schema when re-run. A
// migration whose file changed after it was applied is an error: migrations
// are append-only.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	create := "CREATE TABLE IF NOT EXISTS schema_migrations (" + migrationsColumns + ") ENGINE = ReplacingMergeTree ORDER BY version"
	if s.cluster != "" {
		create = s.clusterDDL().migrationsTable()
	}
	if err := s.conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	applied, err := s.AppliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	done := map[int]AppliedMigration{}
	for _, a := range applied {
		done[a.Version] = a
	}
	var ran []int
	for _, m := range migrations {
		if a, ok := done[m.Version]; ok {
			if a.Checksum != m.Checksum {
				return ran, fmt.Errorf("migration %04d_%s changed after it was applied (checksum %s, applied %s): add a new migration instead", m.Version, m.Name, short(m.Checksum), short(a.Checksum))
			}
			continue
		}
		for i, stmt := range m.Statements {
			rendered := []string{stmt}
			if s.cluster != "" {
				if rendered, err = s.clusterDDL().render(stmt); err != nil {
					return ran, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
			for _, r := range rendered {
				if err := s.conn.Exec(ctx, r); err != nil {
					return ran, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
				}
			}
		}
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, checksum, applied_at)")
		if err != nil {
			return ran, fmt.Errorf("record migration %d: %w", m.Version, err)
		}
		if err := batch.Append(uint32(m.Version), m.Name, m.Checksum, time.Now().UTC()); err != nil {
			return ran, fmt.Errorf("record migration %d: %w", m.Version, err)
		}
		if err := batch.Send(); err != nil {
			return ran, fmt.Errorf("record migration %d: %w", m.Version, err)
		}
		s.Logger.Info("applied migration", "version", m.Version, "name", m.Name, "database", s.database)
		ran = append(ran, m.Version)
	}
	return ran, nil
}

func (s *Store) clusterDDL() clusterDDL {
	return clusterDDL{cluster: s.cluster, database: s.database}
}

// AppliedMigrations lists the recorded migrations in order.
func (s *Store) AppliedMigrations(ctx context.Context) ([]AppliedMigration, error) {
	rows, err := s.conn.Query(ctx, `SELECT version, any(name), any(checksum), min(applied_at)
		FROM schema_migrations GROUP BY version ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []AppliedMigration
	for rows.Next() {
		var a AppliedMigration
		var v uint32
		if err := rows.Scan(&v, &a.Name, &a.Checksum, &a.AppliedAt); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		a.Version = int(v)
		out = append(out, a)
	}
	return out, rows.Err()
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
