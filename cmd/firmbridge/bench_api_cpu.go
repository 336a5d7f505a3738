package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/firmbridge/firmbridge/schema"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// processCPU is the CPU time (user and system) a process used so far, 0
// when it cannot be read.
func processCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * clockTick
}

// listenerPID finds the local process listening on addr's TCP port (the
// services deploy/local runs on this machine), 0 when there is none or
// it cannot be told.
func listenerPID(addr string) int {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// cpuMeter reads the CPU time of this process and of the local ClickHouse
// and Kafka servers, to tell how much CPU a measure cost per profile
// whatever else the machine ran.
type cpuMeter struct {
	clickhouse, kafka int
}

// newCPUMeter finds the local processes serving the ClickHouse address
// and the first broker; 0 (not measured) for one not found here.
func newCPUMeter(clickhouseAddr string, brokers []string) cpuMeter {
	var broker string
	if len(brokers) > 0 {
		broker = brokers[0]
	}
	return cpuMeter{clickhouse: listenerPID(clickhouseAddr), kafka: listenerPID(broker)}
}

type cpuSample struct{ self, clickhouse, kafka time.Duration }

func (m cpuMeter) sample() cpuSample {
	return cpuSample{self: processCPU(os.Getpid()), clickhouse: processCPU(m.clickhouse), kafka: processCPU(m.kafka)}
}

func (a cpuSample) add(b cpuSample) cpuSample {
	return cpuSample{self: a.self + b.self, clickhouse: a.clickhouse + b.clickhouse, kafka: a.kafka + b.kafka}
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{self: a.self - b.self, clickhouse: a.clickhouse - b.clickhouse, kafka: a.kafka - b.kafka}
}

// perThousand renders CPU used per 1,000 items, in milliseconds: this
// process / ClickHouse / Kafka ("-" for a service not found here).
func (m cpuMeter) perThousand(used cpuSample, n int64) string {
	return m.render(used, 1000, n, "%.1f")
}

// perProfile renders the CPU used between two samples per request, in
// milliseconds: this process / ClickHouse / Kafka ("-" for a service not
// found on this machine).
func (m cpuMeter) perProfile(a, b cpuSample, n int) string {
	return m.render(b.sub(a), 1, int64(n), "%.2f")
}

// render renders used×scale/n per process, in milliseconds, with format;
// "" when n is 0.
func (m cpuMeter) render(used cpuSample, scale float64, n int64, format string) string {
	if n == 0 {
		return ""
	}
	ms := func(pid int, d time.Duration) string {
		if pid == 0 {
			return "-"
		}
		return fmt.Sprintf(format, float64(d)/float64(time.Millisecond)*scale/float64(n))
	}
	return ms(os.Getpid(), used.self) + " / " + ms(m.clickhouse, used.clickhouse) + " / " + ms(m.kafka, used.kafka)
}

// benchQueryTag marks the queries of the query-log profile: a setting at
// a value nothing else uses, since 18.16's query_log names no database.
const benchQueryTag = 262147

// profileQueries reads n profiles one after another through the schema,
// as the baseline does, with log_queries on, and summarizes each kind of
// query from system.query_log: count, mean duration and CPU time, rows
// and bytes read.
func profileQueries(ctx context.Context, store *schema.Store, call func(context.Context, string) (int64, error), firms []string) (string, error) {
	qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1, "max_query_size": benchQueryTag}))
	start := time.Now().Add(-time.Second)
	for _, u := range firms {
		if _, err := call(qctx, u); err != nil {
			return "", fmt.Errorf("bench: query profile: %w", err)
		}
	}
	// The server logs a query after its last block went out: flush twice.
	for range 2 {
		if err := store.Conn().Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
			return "", fmt.Errorf("bench: flush query log: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	rows, err := store.Conn().Query(ctx, `SELECT multiIf(position(query, 'FROM consents FINAL') > 0, 'consents',
			position(query, 'FROM profile_records WHERE uscc = ') > 0, 'the whole profile of one firm',
			position(query, 'FROM patent_records') > 0 OR position(query, 'FROM patents') > 0, 'patents',
			position(query, 'tax.vat_return') > 0 OR position(query, 'tax_vat_returns') > 0, 'tax',
			position(query, 'ops.electricity') > 0 OR position(query, 'ops_electricity') > 0, 'operations', 'identity') AS what,
		count(), avg(query_duration_ms), quantileExact(0.99)(query_duration_ms),
		avg(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'OSCPUVirtualTimeMicroseconds')]), avg(read_rows), avg(read_bytes)
		FROM system.query_log
		WHERE type = 2 AND event_time >= ? AND Settings.Values[indexOf(Settings.Names, 'max_query_size')] = ?
		GROUP BY what ORDER BY what`, start.UTC().Truncate(time.Second), strconv.Itoa(benchQueryTag))
	if err != nil {
		return "", fmt.Errorf("bench: read query log: %w", err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var what string
		var n uint64
		var dur, cpu, readRows, readBytes float64
		var p99 uint64
		if err := rows.Scan(&what, &n, &dur, &p99, &cpu, &readRows, &readBytes); err != nil {
			return "", fmt.Errorf("bench: read query log: %w", err)
		}
		parts = append(parts, fmt.Sprintf("%s: %d queries, %.1f ms (p99 %d ms), %.2f ms CPU, %.0f rows and %.2f MB read each", what, n, dur, p99, cpu/1000, readRows, readBytes/1e6))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("bench: read query log: %w", err)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("bench: the query log holds none of the %d profiles' queries", len(firms))
	}
	return strings.Join(parts, "; "), nil
}
