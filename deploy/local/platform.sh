#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The whole platform on this machine: ClickHouse and Kafka (services.sh),
# then the firmbridge binary's ingest workers and API as background
# processes, then demo data.
#
#   deploy/local/platform.sh up      start everything (again: restarts the API and workers on a fresh build)
#   deploy/local/platform.sh down    stop the API, the workers, Kafka and ClickHouse
#   deploy/local/platform.sh reset   down, then delete every local data directory
#   deploy/local/platform.sh status
#
# With FIRMBRIDGE_CLUSTER_MODE=1 (make up-cluster, make down-cluster), the
# services are the local cluster of cluster.sh instead: ZooKeeper, two
# ClickHouse replicas and three Kafka brokers; the API and workers get its
# settings (replicated and Distributed tables, topics replicated three times).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
FB_NAME=platform
# shellcheck source=env.sh
source "$here/env.sh"

: "${FIRMBRIDGE_DEMO_FIRMS:=300}"
: "${FIRMBRIDGE_HTTP_ADDR:=127.0.0.1:8080}"
: "${FIRMBRIDGE_INGEST_OPS_ADDR:=127.0.0.1:8081}"
export FIRMBRIDGE_HTTP_ADDR FIRMBRIDGE_INGEST_OPS_ADDR
services="$here/services.sh"
if [[ ${FIRMBRIDGE_CLUSTER_MODE:-0} == 1 ]]; then
	services="$here/cluster.sh"
	# The cluster's addresses, cluster name and topic replication settings.
	set -a
	eval "$("$here/cluster.sh" env)"
	set +a
fi
export FIRMBRIDGE_CLICKHOUSE_ADDR="${FIRMBRIDGE_CLICKHOUSE_ADDR:-$FIRMBRIDGE_HOST:$FIRMBRIDGE_CH_TCP_PORT}"
export FIRMBRIDGE_KAFKA_BROKERS="${FIRMBRIDGE_KAFKA_BROKERS:-$FIRMBRIDGE_HOST:$FIRMBRIDGE_KAFKA_PORT}"
export FIRMBRIDGE_KEY_FILE="${FIRMBRIDGE_KEY_FILE:-$FIRMBRIDGE_HOME/keys/jwt-signing.pem}"
bin="$FIRMBRIDGE_BIN_DIR/firmbridge"

# stop_proc NAME: stop one of our background firmbridge processes.
stop_proc() {
	local name=$1 pidfile="$FIRMBRIDGE_RUN_DIR/$1.pid" pid
	pid="$(fb_pid_of "$pidfile" "$bin $name")"
	# The pid file may be lost or stale: find our own binary by its command line.
	[[ -n $pid ]] || pid="$(fb_adopt firmbridge "$bin $name" "$pidfile")"
	if [[ -n $pid ]]; then
		fb_stop_pid "firmbridge $name" "$pid" "$pidfile"
	fi
	rm -f "$pidfile"
}

# start_proc NAME: run `firmbridge NAME` in the background with its own log.
start_proc() {
	local name=$1 log="$FIRMBRIDGE_LOG_DIR/$1.log"
	mkdir -p "$FIRMBRIDGE_RUN_DIR" "$FIRMBRIDGE_LOG_DIR"
	# setsid detaches it from this shell's session; the redirections keep it
	# from holding the caller's terminal or pipe open.
	(cd "$FIRMBRIDGE_REPO" && exec setsid "$bin" "$name" >>"$log" 2>&1 </dev/null) &
	echo $! >"$FIRMBRIDGE_RUN_DIR/$name.pid"
	fb_say "started firmbridge $name (pid $(cat "$FIRMBRIDGE_RUN_DIR/$name.pid"), log $log)"
}

up() {
	command -v go >/dev/null 2>&1 || fb_die "go is not on PATH; install the Go toolchain (1.26 or later)"
	"$services" up
	fb_say "building $bin"
	mkdir -p "$FIRMBRIDGE_BIN_DIR"
	(cd "$FIRMBRIDGE_REPO" && go build -o "$bin" ./cmd/firmbridge)
	"$bin" keygen --if-missing
	"$bin" migrate
	# A second `up` restarts the API and workers so they run the fresh build.
	stop_proc serve
	stop_proc ingest
	if [[ -n "$(fb_port_pid "${FIRMBRIDGE_HTTP_ADDR##*:}")" ]]; then
		fb_check_port "${FIRMBRIDGE_HTTP_ADDR##*:}" FIRMBRIDGE_HTTP_ADDR
	fi
	start_proc ingest
	start_proc serve
	local i
	for ((i = 0; i < 100; i++)); do
		if curl -fsS "http://$FIRMBRIDGE_HTTP_ADDR/readyz" >/dev/null 2>&1; then
			break
		fi
		if [[ -z "$(fb_pid_of "$FIRMBRIDGE_RUN_DIR/serve.pid" "firmbridge serve")" ]]; then
			fb_log_tail "$FIRMBRIDGE_LOG_DIR/serve.log"
			fb_die "the API exited during start; its log is above"
		fi
		sleep 0.2
	done
	curl -fsS "http://$FIRMBRIDGE_HTTP_ADDR/readyz" >/dev/null || {
		fb_log_tail "$FIRMBRIDGE_LOG_DIR/serve.log"
		fb_die "the API did not become ready at http://$FIRMBRIDGE_HTTP_ADDR within 20s"
	}
	"$bin" demo --firms "$FIRMBRIDGE_DEMO_FIRMS"
}

down() {
	stop_proc serve
	stop_proc ingest
	"$services" down
}

case "${1:-}" in
up) up ;;
down) down ;;
reset)
	down
	fb_say "deleting $FIRMBRIDGE_HOME (data, logs, keys)"
	rm -rf "$FIRMBRIDGE_HOME"
	;;
status)
	"$services" status || true
	for p in ingest serve; do
		pid="$(fb_pid_of "$FIRMBRIDGE_RUN_DIR/$p.pid" "firmbridge $p")"
		fb_say "firmbridge $p: ${pid:+running (pid $pid)}${pid:-not running}"
	done
	;;
*)
	echo "platform: usage: $0 up|down|reset|status" >&2
	exit 1
	;;
esac
