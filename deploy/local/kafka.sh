#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Local Apache Kafka for development and CI: one broker in KRaft combined mode
# (broker and controller in one JVM), run from the official jars that Maven fetches
# (deploy/local/kafka/pom.xml), on loopback only.
#
#   deploy/local/kafka.sh start|stop|status
#
# Jars: $FIRMBRIDGE_HOME/kafka/lib (fetched again only when pom.xml changes)
# Data: $FIRMBRIDGE_HOME/kafka/data (formatted once; cluster id in kafka/cluster.id)
# Log:  $FIRMBRIDGE_HOME/log/kafka.log
# Needs: Java 17+, Maven (installed with apt-get if missing), Go (builds kafkaready,
# which tells when the broker answers metadata requests).
set -euo pipefail

# shellcheck disable=SC2034 # read by the helpers in env.sh
FB_NAME=kafka
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Heap for a 2-core test machine (Kafka's own scripts use 1 GiB).
: "${FIRMBRIDGE_KAFKA_HEAP_OPTS:=-Xms256m -Xmx512m}"

# shellcheck source=kafka_lib.sh
source "$FIRMBRIDGE_LOCAL_DIR/kafka_lib.sh"

TEMPLATES=$KAFKA_TEMPLATES
DATA=$FIRMBRIDGE_KAFKA_DIR/data
PROPS=$FIRMBRIDGE_KAFKA_DIR/server.properties
CLUSTER_ID_FILE=$FIRMBRIDGE_KAFKA_DIR/cluster.id
PIDFILE=$FIRMBRIDGE_RUN_DIR/kafka.pid
# stdout/stderr of the JVM: crashes and anything logged before log4j2 is set up.
OUTLOG=${FIRMBRIDGE_KAFKA_LOG%.log}.out
ADDR=$FIRMBRIDGE_HOST:$FIRMBRIDGE_KAFKA_PORT
# What identifies our broker in /proc/PID/cmdline.
PATTERN="kafka.Kafka $PROPS"

# check_java, ensure_lib, ensure_ready_tool and java_opts: kafka_lib.sh.

render_props() {
	mkdir -p "$DATA" "$FIRMBRIDGE_LOG_DIR" "$FIRMBRIDGE_RUN_DIR"
	fb_render "$TEMPLATES/server.properties" "$PROPS" \
		HOST="$FIRMBRIDGE_HOST" PORT="$FIRMBRIDGE_KAFKA_PORT" \
		CONTROLLER_PORT="$FIRMBRIDGE_KAFKA_CONTROLLER_PORT" LOG_DIRS="$DATA"
}

# format_storage: format the data dir once; meta.properties marks it as done.
format_storage() {
	local id out
	[[ -f $DATA/meta.properties ]] && return 0
	local -a opts
	mapfile -t opts < <(java_opts "$FIRMBRIDGE_KAFKA_LOG" "$FIRMBRIDGE_LOG_DIR")
	if [[ -s $CLUSTER_ID_FILE ]]; then
		id="$(<"$CLUSTER_ID_FILE")"
	else
		id="$("$JAVA" "${opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool random-uuid | tail -n 1)"
		[[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] ||
			fb_die "kafka.tools.StorageTool random-uuid printed '$id', not a cluster id; check the jars in $LIB"
		echo "$id" >"$CLUSTER_ID_FILE"
	fi
	if ! out="$("$JAVA" "${opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool format -t "$id" -c "$PROPS" 2>&1)"; then
		printf '%s\n' "$out" >&2
		fb_die "formatting $DATA failed (output above); if it holds an old cluster, remove $FIRMBRIDGE_KAFKA_DIR/data and start again"
	fi
	fb_say "formatted $DATA for cluster $id"
}

# ready: one metadata round trip, bounded.
ready() { "$READY" -addr "$ADDR" -timeout 2s -q 2>/dev/null; }

# wait_ready PID SECONDS: until the broker answers, or fail if it died.
wait_ready() {
	local pid=$1 bound=$2 deadline
	deadline=$((SECONDS + bound))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			fb_log_tail "$OUTLOG" 20
			fb_log_tail "$FIRMBRIDGE_KAFKA_LOG" 40
			rm -f "$PIDFILE"
			fb_die "the Kafka broker (pid $pid) exited during startup; the cause is in the lines above (from $OUTLOG and $FIRMBRIDGE_KAFKA_LOG)"
		fi
		ready && return 0
		sleep 1
	done
	return 1
}

# our_pid: the pid of our server, from the pid file or, if that was lost, from /proc.
our_pid() {
	local pid
	pid="$(fb_pid_of "$PIDFILE" "$PATTERN")"
	[[ -n $pid ]] || pid="$(fb_adopt java "$PATTERN" "$PIDFILE")"
	printf '%s\n' "$pid"
}

start() {
	local pid started running_ports
	check_java
	ensure_ready_tool
	pid="$(our_pid)"
	if [[ -n $pid ]]; then
		# Started with other ports than asked for now: say so instead of waiting in vain.
		# (Only once it listens at all: a server still starting has no ports yet.)
		running_ports="$(fb_pid_ports "$pid")"
		if [[ -n $running_ports ]] && ! fb_pid_listens "$pid" "$FIRMBRIDGE_KAFKA_PORT"; then
			fb_die "already running (pid $pid) on port(s) $running_ports, not $FIRMBRIDGE_KAFKA_PORT; run '$0 stop' first to change FIRMBRIDGE_KAFKA_PORT"
		fi
		if wait_ready "$pid" "$FIRMBRIDGE_KAFKA_START_TIMEOUT"; then
			fb_say "already running (pid $pid) on $ADDR"
			return 0
		fi
		fb_die "the Kafka broker (pid $pid) runs but does not answer on $ADDR; run '$0 stop' and start again"
	fi
	rm -f "$PIDFILE"
	fb_check_port "$FIRMBRIDGE_KAFKA_PORT" FIRMBRIDGE_KAFKA_PORT
	fb_check_port "$FIRMBRIDGE_KAFKA_CONTROLLER_PORT" FIRMBRIDGE_KAFKA_CONTROLLER_PORT
	ensure_lib
	render_props
	format_storage

	local -a heap opts
	read -r -a heap <<<"$FIRMBRIDGE_KAFKA_HEAP_OPTS"
	mapfile -t opts < <(java_opts "$FIRMBRIDGE_KAFKA_LOG" "$FIRMBRIDGE_LOG_DIR")
	started=$SECONDS
	fb_launch "$FIRMBRIDGE_KAFKA_DIR" "$OUTLOG" "$JAVA" "${heap[@]}" \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		"${opts[@]}" -cp "$LIB/*" kafka.Kafka "$PROPS"
	pid=$FB_LAUNCHED_PID
	echo "$pid" >"$PIDFILE"
	if ! wait_ready "$pid" "$FIRMBRIDGE_KAFKA_START_TIMEOUT"; then
		fb_log_tail "$FIRMBRIDGE_KAFKA_LOG" 40
		fb_die "the Kafka broker (pid $pid) did not answer on $ADDR within ${FIRMBRIDGE_KAFKA_START_TIMEOUT}s; see $FIRMBRIDGE_KAFKA_LOG, then '$0 stop'"
	fi
	fb_say "started (pid $pid) on $ADDR (controller port $FIRMBRIDGE_KAFKA_CONTROLLER_PORT) in $((SECONDS - started))s; cluster $(<"$CLUSTER_ID_FILE"), data in $DATA"
}

stop() {
	local pid
	pid="$(our_pid)"
	if [[ -z $pid ]]; then
		rm -f "$PIDFILE"
		fb_say "not running"
		return 0
	fi
	fb_stop_pid "Kafka broker" "$pid" "$PIDFILE"
}

status() {
	local pid
	pid="$(our_pid)"
	if [[ -z $pid ]]; then
		fb_say "not running (no live pid in $PIDFILE); start it with '$0 start'"
		return 1
	fi
	ensure_ready_tool
	if ! ready; then
		fb_say "pid $pid is alive but does not answer on $ADDR; see $FIRMBRIDGE_KAFKA_LOG"
		return 1
	fi
	fb_say "running (pid $pid) on $ADDR (controller port $FIRMBRIDGE_KAFKA_CONTROLLER_PORT)"
}

case "${1:-}" in
start)
	fb_lock kafka
	start
	;;
stop)
	fb_lock kafka
	stop
	;;
status) status ;;
*) fb_die "usage: $0 start|stop|status" ;;
esac
