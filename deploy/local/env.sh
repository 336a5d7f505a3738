# shellcheck shell=bash
# Shared settings and helpers for the local services (ClickHouse, Kafka).
# Sourced by clickhouse.sh, kafka.sh and services.sh; not meant to be run.
# Every setting can be overridden from the environment, e.g.
#   FIRMBRIDGE_CH_TCP_PORT=29000 deploy/local/clickhouse.sh start

# The repo root is two levels above this file, whatever the caller's cwd.
FIRMBRIDGE_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
FIRMBRIDGE_REPO="$(cd "$FIRMBRIDGE_LOCAL_DIR/../.." && pwd -P)"
export FIRMBRIDGE_LOCAL_DIR FIRMBRIDGE_REPO

# Everything the services write lives under one gitignored folder.
: "${FIRMBRIDGE_HOME:=$FIRMBRIDGE_REPO/.local}"
: "${FIRMBRIDGE_CH_DIR:=$FIRMBRIDGE_HOME/clickhouse}"
: "${FIRMBRIDGE_KAFKA_DIR:=$FIRMBRIDGE_HOME/kafka}"
: "${FIRMBRIDGE_LOG_DIR:=$FIRMBRIDGE_HOME/log}"
: "${FIRMBRIDGE_RUN_DIR:=$FIRMBRIDGE_HOME/run}"
: "${FIRMBRIDGE_BIN_DIR:=$FIRMBRIDGE_HOME/bin}"
: "${FIRMBRIDGE_CH_LOG:=$FIRMBRIDGE_LOG_DIR/clickhouse.log}"
: "${FIRMBRIDGE_KAFKA_LOG:=$FIRMBRIDGE_LOG_DIR/kafka.log}"

# Loopback only. Ports are chosen away from a system-wide ClickHouse
# (9000/8123/9009) and Kafka (9092/9093) so both can coexist.
FIRMBRIDGE_HOST=127.0.0.1
: "${FIRMBRIDGE_CH_TCP_PORT:=19000}"
: "${FIRMBRIDGE_CH_HTTP_PORT:=18123}"
: "${FIRMBRIDGE_KAFKA_PORT:=19092}"
: "${FIRMBRIDGE_KAFKA_CONTROLLER_PORT:=19093}"

# Bounds (seconds) for waiting on start and stop.
: "${FIRMBRIDGE_CH_START_TIMEOUT:=60}"
: "${FIRMBRIDGE_KAFKA_START_TIMEOUT:=90}"
: "${FIRMBRIDGE_STOP_TIMEOUT:=30}"

export FIRMBRIDGE_HOME FIRMBRIDGE_CH_DIR FIRMBRIDGE_KAFKA_DIR FIRMBRIDGE_LOG_DIR \
	FIRMBRIDGE_RUN_DIR FIRMBRIDGE_BIN_DIR FIRMBRIDGE_CH_LOG FIRMBRIDGE_KAFKA_LOG \
	FIRMBRIDGE_HOST FIRMBRIDGE_CH_TCP_PORT FIRMBRIDGE_CH_HTTP_PORT \
	FIRMBRIDGE_KAFKA_PORT FIRMBRIDGE_KAFKA_CONTROLLER_PORT \
	FIRMBRIDGE_CH_START_TIMEOUT FIRMBRIDGE_KAFKA_START_TIMEOUT FIRMBRIDGE_STOP_TIMEOUT

# A bad port would otherwise wrap silently (ClickHouse takes 99999 as 34463).
for _fb_var in FIRMBRIDGE_CH_TCP_PORT FIRMBRIDGE_CH_HTTP_PORT FIRMBRIDGE_KAFKA_PORT FIRMBRIDGE_KAFKA_CONTROLLER_PORT; do
	if ! [[ ${!_fb_var} =~ ^[0-9]+$ ]] || ((${!_fb_var} < 1 || ${!_fb_var} > 65535)); then
		printf '%s: %s=%s is not a port number; set it to a free port between 1024 and 65535\n' \
			"${FB_NAME:-firmbridge}" "$_fb_var" "${!_fb_var}" >&2
		exit 1
	fi
done
unset _fb_var

# fb_say and fb_die print one line a person reads, prefixed with the caller's name.
fb_say() { printf '%s: %s\n' "${FB_NAME:-firmbridge}" "$*"; }
fb_die() {
	printf '%s: %s\n' "${FB_NAME:-firmbridge}" "$*" >&2
	exit 1
}

# fb_port_pid PORT: print the pid listening on PORT (empty if none or unknown).
fb_port_pid() {
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true
}

# fb_pid_listens PID PORT: true if process PID listens on PORT.
fb_pid_listens() {
	ss -Hltnp "sport = :$2" 2>/dev/null | grep -q "pid=$1,"
}

# fb_pid_ports PID: the TCP ports process PID listens on, space-separated.
fb_pid_ports() {
	ss -Hltnp 2>/dev/null | grep "pid=$1," | awk '{n = split($4, a, ":"); print a[n]}' | sort -un | tr '\n' ' ' | sed 's/ $//'
}

# fb_adopt EXE PATTERN PIDFILE: if our own server (program EXE, its command line
# containing PATTERN) runs but the pid file was lost, write the pid file again and
# print the pid, so start, stop and status keep working and no second copy starts.
fb_adopt() {
	local exe=$1 pattern=$2 pidfile=$3 f pid cmd
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		cmd="$(tr '\0' ' ' 2>/dev/null <"$f")" || continue
		[[ $cmd == *"$pattern"* ]] || continue
		cmd=${cmd%% *}
		[[ ${cmd##*/} == "$exe" ]] || continue
		mkdir -p "$(dirname "$pidfile")"
		echo "$pid" >"$pidfile"
		printf '%s\n' "$pid"
		return 0
	done
}

# fb_check_port PORT VARNAME: fail naming the process that already listens on PORT.
fb_check_port() {
	local port=$1 var=$2 line pid name
	line="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)" || true
	[[ -z $line ]] && return 0
	pid="$(grep -o 'pid=[0-9]*' <<<"$line" | head -n 1 | cut -d= -f2)" || true
	# ss cuts names at 15 characters; the command line tells more (java, clickhouse-server).
	name="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n 1)" || true
	name=${name##*/}
	[[ -n $name ]] || name="$(grep -o '(("[^"]*"' <<<"$line" | head -n 1 | cut -d'"' -f2)" || true
	if [[ -n $pid ]]; then
		fb_die "port $port is taken by pid $pid (${name:-unknown}); set $var or stop it"
	fi
	fb_die "port $port is taken by another process; set $var or stop it"
}

# fb_pid_of PIDFILE PATTERN: print the pid if it is alive and its command line
# contains PATTERN (guards against a recycled pid); otherwise print nothing.
fb_pid_of() {
	local pidfile=$1 pattern=$2 pid
	[[ -f $pidfile ]] || return 0
	pid="$(tr -dc '0-9' <"$pidfile")"
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 0
	printf '%s\n' "$pid"
}

# fb_stop_pid NAME PID PIDFILE: SIGTERM, wait up to FIRMBRIDGE_STOP_TIMEOUT, then SIGKILL.
fb_stop_pid() {
	local name=$1 pid=$2 pidfile=$3 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < FIRMBRIDGE_STOP_TIMEOUT * 5; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		fb_say "$name (pid $pid) ignored SIGTERM for ${FIRMBRIDGE_STOP_TIMEOUT}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$pidfile"
	fb_say "stopped $name (was pid $pid)"
}

# fb_render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT with @@KEY@@ replaced.
fb_render() {
	local template=$1 out=$2 kv key value esc
	shift 2
	# An empty first expression keeps sed from reading the template as a script.
	local -a args=(-e '')
	for kv in "$@"; do
		key=${kv%%=*}
		value=${kv#*=}
		# Escape what sed treats specially in a replacement (\, &, and the | delimiter).
		esc="$(printf '%s' "$value" | sed -e 's/[\\&|]/\\&/g')"
		args+=(-e "s|@@${key}@@|${esc}|g")
	done
	sed "${args[@]}" "$template" >"$out.tmp"
	if grep -q '@@[A-Z_]*@@' "$out.tmp"; then
		rm -f "$out.tmp"
		fb_die "template $template has a placeholder with no value; add it to the fb_render call"
	fi
	mv "$out.tmp" "$out"
}

# fb_apt_install PKG...: install Debian packages, refreshing the package lists
# only when the install fails on stale or missing lists.
fb_apt_install() {
	local -a sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 ||
			fb_die "need to install $* but not root and no sudo; install them with apt-get as root"
		sudo=(sudo)
	fi
	fb_say "installing $* with apt-get"
	if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
			fb_die "apt-get update failed; check the machine's apt sources and network"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
			fb_die "apt-get install $* failed; run it by hand to see why"
	fi
}

# fb_clickhouse_server: print the path of clickhouse-server. Debian puts it
# in /usr/sbin, which a non-root PATH often lacks.
fb_clickhouse_server() {
	command -v clickhouse-server 2>/dev/null && return 0
	[[ -x /usr/sbin/clickhouse-server ]] && echo /usr/sbin/clickhouse-server && return 0
	return 1
}

# fb_ensure_clickhouse: install Debian's clickhouse-server and -client if missing.
fb_ensure_clickhouse() {
	if ! fb_clickhouse_server >/dev/null || ! command -v clickhouse-client >/dev/null 2>&1; then
		fb_apt_install clickhouse-server clickhouse-client
	fi
	fb_clickhouse_server >/dev/null || fb_die "clickhouse-server is still missing after apt-get install; install it by hand"
}

# fb_lock NAME: hold an exclusive lock on $FIRMBRIDGE_RUN_DIR/NAME.lock until the
# script exits, so two concurrent starts (say, two test runs) cannot both launch.
# The server it launches must not inherit the lock: launch with fb_launch.
fb_lock() {
	mkdir -p "$FIRMBRIDGE_RUN_DIR"
	exec {FB_LOCK_FD}>"$FIRMBRIDGE_RUN_DIR/$1.lock"
	flock -w 180 "$FB_LOCK_FD" ||
		fb_die "another start or stop of $1 has held $FIRMBRIDGE_RUN_DIR/$1.lock for 180s; wait for it or end it"
}

# fb_launch DIR OUT CMD...: start CMD in DIR in the background, detached, stdout and
# stderr appended to OUT, and set FB_LAUNCHED_PID to its pid. setsid gives it its own
# session, so the caller's Ctrl-C or exit does not take it down; a background subshell
# is not a group leader, so setsid and nohup exec in place and $! is CMD's own pid.
fb_launch() {
	local dir=$1 out=$2
	shift 2
	(
		# Do not hand our start/stop lock to a server that outlives this script.
		if [[ -n ${FB_LOCK_FD:-} ]]; then exec {FB_LOCK_FD}>&-; fi
		cd "$dir" && exec setsid nohup "$@" >>"$out" 2>&1 </dev/null
	) &
	# shellcheck disable=SC2034 # read by the caller
	FB_LAUNCHED_PID=$!
}

# fb_log_tail FILE [N]: show the end of a log after a failure.
fb_log_tail() {
	local file=$1 n=${2:-40}
	if [[ -s $file ]]; then
		printf -- '--- last %s lines of %s ---\n' "$n" "$file" >&2
		tail -n "$n" "$file" >&2
		printf -- '---\n' >&2
	fi
}
