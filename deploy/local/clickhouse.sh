#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local ClickHouse for development and CI: Debian's clickhouse-server (18.16) run as a
# plain background process, with a config of the project's own, on loopback only.
#
#   deploy/local/clickhouse.sh start|stop|status
#
# Data, rendered config and the server's own files: $FIRMBRIDGE_HOME/clickhouse
# Log: $FIRMBRIDGE_HOME/log/clickhouse.log (errors also in clickhouse.err.log)
# Settings and ports: deploy/local/env.sh. Running as root works with 18.16: it has
# no check that the data dir's owner matches the user, and the scripts create the
# data dir as whoever runs them, so any user that can write FIRMBRIDGE_HOME works.
set -euo pipefail

# shellcheck disable=SC2034 # read by the helpers in env.sh
FB_NAME=clickhouse
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PIDFILE=$FIRMBRIDGE_RUN_DIR/clickhouse.pid
CONFIG=$FIRMBRIDGE_CH_DIR/config.xml
ERRLOG=${FIRMBRIDGE_CH_LOG%.log}.err.log
# stdout/stderr of the process: only what happens before its logger is set up.
OUTLOG=${FIRMBRIDGE_CH_LOG%.log}.out
TEMPLATES=$FIRMBRIDGE_LOCAL_DIR/clickhouse
ADDR="$FIRMBRIDGE_HOST:$FIRMBRIDGE_CH_TCP_PORT"
# What identifies our server in /proc/PID/cmdline.
PATTERN="--config-file=$CONFIG"

ensure_installed() {
	fb_ensure_clickhouse
	command -v ss >/dev/null 2>&1 || fb_apt_install iproute2
}

# query SQL: run one query on our server; bounded so a wedged server cannot hang us.
query() {
	timeout 10 clickhouse-client --host "$FIRMBRIDGE_HOST" --port "$FIRMBRIDGE_CH_TCP_PORT" \
		--connect_timeout 2 --query "$1" 2>/dev/null
}

# wait_ready PID SECONDS: until the server answers SELECT 1, or fail if it died.
wait_ready() {
	local pid=$1 bound=$2 deadline
	deadline=$((SECONDS + bound))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			fb_log_tail "$OUTLOG" 20
			fb_log_tail "$FIRMBRIDGE_CH_LOG" 40
			rm -f "$PIDFILE"
			fb_die "clickhouse-server (pid $pid) exited during startup; the cause is in the lines above (from $OUTLOG and $FIRMBRIDGE_CH_LOG)"
		fi
		[[ $(query 'SELECT 1' || true) == 1 ]] && return 0
		sleep 0.5
	done
	return 1
}

render_config() {
	mkdir -p "$FIRMBRIDGE_CH_DIR"/{data,tmp,user_files,format_schemas} "$FIRMBRIDGE_LOG_DIR" "$FIRMBRIDGE_RUN_DIR"
	fb_render "$TEMPLATES/config.xml" "$CONFIG" \
		LOG="$FIRMBRIDGE_CH_LOG" ERRLOG="$ERRLOG" HOST="$FIRMBRIDGE_HOST" \
		TCP_PORT="$FIRMBRIDGE_CH_TCP_PORT" HTTP_PORT="$FIRMBRIDGE_CH_HTTP_PORT" \
		DATA_DIR="$FIRMBRIDGE_CH_DIR/data" TMP_DIR="$FIRMBRIDGE_CH_DIR/tmp" \
		USER_FILES_DIR="$FIRMBRIDGE_CH_DIR/user_files" \
		FORMAT_SCHEMA_DIR="$FIRMBRIDGE_CH_DIR/format_schemas"
	# users.xml has no placeholders; copied so the server reads it beside config.xml.
	fb_render "$TEMPLATES/users.xml" "$FIRMBRIDGE_CH_DIR/users.xml"
}

# our_pid: the pid of our server, from the pid file or, if that was lost, from /proc.
our_pid() {
	local pid
	pid="$(fb_pid_of "$PIDFILE" "$PATTERN")"
	[[ -n $pid ]] || pid="$(fb_adopt clickhouse-server "$PATTERN" "$PIDFILE")"
	printf '%s\n' "$pid"
}

start() {
	local pid server started running_ports
	ensure_installed
	pid="$(our_pid)"
	if [[ -n $pid ]]; then
		# Started with other ports than asked for now: say so instead of waiting in vain.
		# (Only once it listens at all: a server still starting has no ports yet.)
		running_ports="$(fb_pid_ports "$pid")"
		if [[ -n $running_ports ]] && ! fb_pid_listens "$pid" "$FIRMBRIDGE_CH_TCP_PORT"; then
			fb_die "already running (pid $pid) on port(s) $running_ports, not $FIRMBRIDGE_CH_TCP_PORT; run '$0 stop' first to change FIRMBRIDGE_CH_TCP_PORT"
		fi
		# Ours is running (maybe still starting): answer once it is ready.
		if wait_ready "$pid" "$FIRMBRIDGE_CH_START_TIMEOUT"; then
			fb_say "already running (pid $pid) on $ADDR, http port $FIRMBRIDGE_CH_HTTP_PORT"
			return 0
		fi
		fb_die "clickhouse-server (pid $pid) runs but does not answer on $ADDR; run '$0 stop' and start again"
	fi
	rm -f "$PIDFILE"
	fb_check_port "$FIRMBRIDGE_CH_TCP_PORT" FIRMBRIDGE_CH_TCP_PORT
	fb_check_port "$FIRMBRIDGE_CH_HTTP_PORT" FIRMBRIDGE_CH_HTTP_PORT
	render_config
	server="$(fb_clickhouse_server)"
	started=$SECONDS
	fb_launch "$FIRMBRIDGE_CH_DIR" "$OUTLOG" "$server" --config-file="$CONFIG"
	pid=$FB_LAUNCHED_PID
	echo "$pid" >"$PIDFILE"
	if ! wait_ready "$pid" "$FIRMBRIDGE_CH_START_TIMEOUT"; then
		fb_log_tail "$FIRMBRIDGE_CH_LOG" 40
		fb_die "clickhouse-server (pid $pid) did not answer on $ADDR within ${FIRMBRIDGE_CH_START_TIMEOUT}s; see $FIRMBRIDGE_CH_LOG, then '$0 stop'"
	fi
	fb_say "started (pid $pid) on $ADDR, http port $FIRMBRIDGE_CH_HTTP_PORT, version $(query 'SELECT version()'), in $((SECONDS - started))s; data in $FIRMBRIDGE_CH_DIR"
}

stop() {
	local pid
	pid="$(our_pid)"
	if [[ -z $pid ]]; then
		rm -f "$PIDFILE"
		fb_say "not running"
		return 0
	fi
	fb_stop_pid clickhouse-server "$pid" "$PIDFILE"
}

status() {
	local pid version
	pid="$(our_pid)"
	if [[ -z $pid ]]; then
		fb_say "not running (no live pid in $PIDFILE); start it with '$0 start'"
		return 1
	fi
	if ! version="$(query 'SELECT version()')"; then
		fb_say "pid $pid is alive but does not answer on $ADDR; see $FIRMBRIDGE_CH_LOG"
		return 1
	fi
	fb_say "running (pid $pid) on $ADDR, http port $FIRMBRIDGE_CH_HTTP_PORT, version $version"
}

case "${1:-}" in
start)
	fb_lock clickhouse
	start
	;;
stop)
	fb_lock clickhouse
	stop
	;;
status) status ;;
*) fb_die "usage: $0 start|stop|status" ;;
esac
