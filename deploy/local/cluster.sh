#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# A local CLUSTER for replication and fault tests, on loopback only, beside (not instead
# of) the single-node services of clickhouse.sh and kafka.sh:
#   zk              one ZooKeeper (Debian's zookeeper package), for ClickHouse replication
#   ch1, ch2        ClickHouse 18.16, one shard of two replicas, cluster "firmbridge"
#   kafka1..kafka3  three Kafka brokers, KRaft combined mode, one static controller quorum
#
#   deploy/local/cluster.sh up       start what is not running, wait until all are ready,
#                                    then print the client settings (as `env`)
#   deploy/local/cluster.sh down     stop the brokers, then ClickHouse, then ZooKeeper
#   deploy/local/cluster.sh status   one line per node; exit 0 only if all answer
#   deploy/local/cluster.sh reset    down, then delete the cluster's data and logs
#   deploy/local/cluster.sh env      the client settings, as shell-sourceable NAME=value lines
#   deploy/local/cluster.sh start NODE...  start (no-op if running) and wait until ready
#   deploy/local/cluster.sh stop NODE...   SIGTERM, bounded (SIGKILL after FIRMBRIDGE_STOP_TIMEOUT)
#   deploy/local/cluster.sh kill NODE...   SIGKILL at once
#   deploy/local/cluster.sh pid NODE       print the node's pid (exit 1 if it is not running)
# NODE is one of: zk ch1 ch2 kafka1 kafka2 kafka3.
#
# `up` prints its progress on stderr and only the settings on stdout, so
#   set -a; eval "$(deploy/local/cluster.sh up)"; set +a
# starts the cluster and exports them. A broker needs 2 of the 3 controllers (kafka1..3)
# to become ready: start a lone broker together with another one, or run `up`; and the
# last broker left cannot finish a controlled shutdown, so `stop` SIGKILLs it after a grace.
# After `kill chN` + `start chN`, chN answers at once but its Replicated tables resume
# (and catch up) only once ZooKeeper expired the killed server's session
# (FIRMBRIDGE_CLUSTER_ZK_SESSION_TIMEOUT_MS, 10 s) and 18.16 retried, every 10 s: ~10-20 s.
#
# Data and rendered configs: $FIRMBRIDGE_HOME/cluster/NODE (FIRMBRIDGE_CLUSTER_DIR)
# Logs: $FIRMBRIDGE_HOME/log/cluster/NODE.log (and NODE.out: the process's own output)
# Pids and the start/stop lock: $FIRMBRIDGE_HOME/run/cluster/
# Kafka jars: shared with kafka.sh ($FIRMBRIDGE_HOME/kafka/lib, see kafka_lib.sh).
# Ports (all overridable from the environment):
#   FIRMBRIDGE_ZK_PORT 12181
#   FIRMBRIDGE_CH1_TCP_PORT 19100, FIRMBRIDGE_CH1_HTTP_PORT 18200, FIRMBRIDGE_CH1_INTERSERVER_PORT 19109
#   FIRMBRIDGE_CH2_TCP_PORT 19200, FIRMBRIDGE_CH2_HTTP_PORT 18300, FIRMBRIDGE_CH2_INTERSERVER_PORT 19209
#   FIRMBRIDGE_KAFKA{1,2,3}_PORT 19192/19292/19392, FIRMBRIDGE_KAFKA{1,2,3}_CONTROLLER_PORT 19193/19293/19393
# Heaps: FIRMBRIDGE_CLUSTER_KAFKA_HEAP_OPTS (-Xms128m -Xmx384m each), FIRMBRIDGE_ZK_HEAP_OPTS (-Xmx256m).
# Start bounds (s): FIRMBRIDGE_ZK_START_TIMEOUT 30, FIRMBRIDGE_CH_START_TIMEOUT (env.sh, 60),
# FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT 120; stop: FIRMBRIDGE_STOP_TIMEOUT (env.sh, 30).
set -euo pipefail

# shellcheck disable=SC2034 # read by the helpers in env.sh
FB_NAME=cluster
# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source=kafka_lib.sh
source "$FIRMBRIDGE_LOCAL_DIR/kafka_lib.sh"

: "${FIRMBRIDGE_CLUSTER_DIR:=$FIRMBRIDGE_HOME/cluster}"
: "${FIRMBRIDGE_CLUSTER_NAME:=firmbridge}"
: "${FIRMBRIDGE_ZK_PORT:=12181}"
: "${FIRMBRIDGE_CH1_TCP_PORT:=19100}"
: "${FIRMBRIDGE_CH1_HTTP_PORT:=18200}"
: "${FIRMBRIDGE_CH1_INTERSERVER_PORT:=19109}"
: "${FIRMBRIDGE_CH2_TCP_PORT:=19200}"
: "${FIRMBRIDGE_CH2_HTTP_PORT:=18300}"
: "${FIRMBRIDGE_CH2_INTERSERVER_PORT:=19209}"
: "${FIRMBRIDGE_KAFKA1_PORT:=19192}"
: "${FIRMBRIDGE_KAFKA1_CONTROLLER_PORT:=19193}"
: "${FIRMBRIDGE_KAFKA2_PORT:=19292}"
: "${FIRMBRIDGE_KAFKA2_CONTROLLER_PORT:=19293}"
: "${FIRMBRIDGE_KAFKA3_PORT:=19392}"
: "${FIRMBRIDGE_KAFKA3_CONTROLLER_PORT:=19393}"
# Three brokers and a ZooKeeper on a 2-core machine: smaller heaps than kafka.sh's.
: "${FIRMBRIDGE_CLUSTER_KAFKA_HEAP_OPTS:=-Xms128m -Xmx384m}"
: "${FIRMBRIDGE_ZK_HEAP_OPTS:=-Xmx256m}"
# Bounds (seconds). ClickHouse uses FIRMBRIDGE_CH_START_TIMEOUT, stops FIRMBRIDGE_STOP_TIMEOUT (env.sh).
: "${FIRMBRIDGE_ZK_START_TIMEOUT:=30}"
: "${FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT:=120}"
# ClickHouse's ZooKeeper session: a killed replica is active again only after it expires.
: "${FIRMBRIDGE_CLUSTER_ZK_SESSION_TIMEOUT_MS:=10000}"

NODES=(zk ch1 ch2 kafka1 kafka2 kafka3)
BROKERS=(kafka1 kafka2 kafka3)
PORT_VARS=(FIRMBRIDGE_ZK_PORT
	FIRMBRIDGE_CH1_TCP_PORT FIRMBRIDGE_CH1_HTTP_PORT FIRMBRIDGE_CH1_INTERSERVER_PORT
	FIRMBRIDGE_CH2_TCP_PORT FIRMBRIDGE_CH2_HTTP_PORT FIRMBRIDGE_CH2_INTERSERVER_PORT
	FIRMBRIDGE_KAFKA1_PORT FIRMBRIDGE_KAFKA1_CONTROLLER_PORT
	FIRMBRIDGE_KAFKA2_PORT FIRMBRIDGE_KAFKA2_CONTROLLER_PORT
	FIRMBRIDGE_KAFKA3_PORT FIRMBRIDGE_KAFKA3_CONTROLLER_PORT)

# Validate like env.sh: a bad port would otherwise wrap or collide silently.
declare -A _seen=()
for _var in "${PORT_VARS[@]}"; do
	if ! [[ ${!_var} =~ ^[0-9]+$ ]] || ((${!_var} < 1 || ${!_var} > 65535)); then
		fb_die "$_var=${!_var} is not a port number; set it to a free port between 1024 and 65535"
	fi
	[[ -z ${_seen[${!_var}]:-} ]] ||
		fb_die "$_var and ${_seen[${!_var}]} are both ${!_var}; give every cluster node port its own number"
	_seen[${!_var}]=$_var
done
unset _var _seen
for _var in FIRMBRIDGE_ZK_START_TIMEOUT FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT FIRMBRIDGE_CH_START_TIMEOUT \
	FIRMBRIDGE_STOP_TIMEOUT FIRMBRIDGE_CLUSTER_ZK_SESSION_TIMEOUT_MS; do
	[[ ${!_var} =~ ^[1-9][0-9]*$ ]] || fb_die "$_var=${!_var} is not a positive whole number"
done
unset _var
# It becomes an XML element name and is written unquoted in ON CLUSTER clauses.
[[ $FIRMBRIDGE_CLUSTER_NAME =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
	fb_die "FIRMBRIDGE_CLUSTER_NAME=$FIRMBRIDGE_CLUSTER_NAME: use letters, digits and _ only, not starting with a digit"

CDIR=$FIRMBRIDGE_CLUSTER_DIR
CLOG=$FIRMBRIDGE_LOG_DIR/cluster
CRUN=$FIRMBRIDGE_RUN_DIR/cluster
CTPL=$FIRMBRIDGE_LOCAL_DIR/cluster
KAFKA_CLUSTER_ID_FILE=$CDIR/kafka.cluster.id
# Debian's zookeeper.jar names its dependencies in its manifest; the logging binding
# (slf4j -> log4j 1.2, as the package's own scripts use) is added by hand. Not
# /usr/share/java/*: that folder holds several slf4j bindings and log4j-over-slf4j.
ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar

# ---- the nodes -------------------------------------------------------------------------

# kind NODE: zk, ch or kafka; fails for anything else.
kind() {
	case $1 in
	zk) echo zk ;;
	ch1 | ch2) echo ch ;;
	kafka1 | kafka2 | kafka3) echo kafka ;;
	*) return 1 ;;
	esac
}

check_node() {
	kind "$1" >/dev/null || fb_die "unknown node '$1'; use one of: ${NODES[*]}"
}

# port_vars NODE: the names of the node's port settings, its client port first.
port_vars() {
	local n=${1//[!0-9]/}
	case "$(kind "$1")" in
	zk) echo FIRMBRIDGE_ZK_PORT ;;
	ch) echo "FIRMBRIDGE_CH${n}_TCP_PORT FIRMBRIDGE_CH${n}_HTTP_PORT FIRMBRIDGE_CH${n}_INTERSERVER_PORT" ;;
	kafka) echo "FIRMBRIDGE_KAFKA${n}_PORT FIRMBRIDGE_KAFKA${n}_CONTROLLER_PORT" ;;
	esac
}

# port NODE: the node's client port.
port() {
	local -a vars
	read -r -a vars <<<"$(port_vars "$1")"
	printf '%s\n' "${!vars[0]}"
}

addr() { printf '%s:%s\n' "$FIRMBRIDGE_HOST" "$(port "$1")"; }
pidfile() { printf '%s\n' "$CRUN/$1.pid"; }
logfile() { printf '%s\n' "$CLOG/$1.log"; }
# outfile NODE: stdout/stderr of the process (what it says before its logger is set up).
outfile() { printf '%s\n' "$CLOG/$1.out"; }

# pattern NODE: what identifies the node's process in /proc/PID/cmdline.
pattern() {
	case "$(kind "$1")" in
	zk) printf '%s\n' "QuorumPeerMain $CDIR/zk/zoo.cfg" ;;
	ch) printf '%s\n' "--config-file=$CDIR/$1/config.xml" ;;
	kafka) printf '%s\n' "kafka.Kafka $CDIR/$1/server.properties" ;;
	esac
}

exe() {
	case "$(kind "$1")" in
	ch) echo clickhouse-server ;;
	*) echo java ;;
	esac
}

# alive PID: the process exists and is not a zombie (this machine's init reaps late,
# and kill -0 succeeds on a zombie).
alive() {
	local line state
	[[ -n $1 ]] || return 1
	read -r line 2>/dev/null <"/proc/$1/stat" || return 1
	state=${line##*) }
	state=${state%% *}
	[[ -n $state && $state != Z ]]
}

# our_pid NODE: the node's pid, from its pid file or, if that was lost, from /proc.
our_pid() {
	local pid pat
	pat="$(pattern "$1")"
	pid="$(fb_pid_of "$(pidfile "$1")" "$pat")"
	[[ -n $pid ]] || pid="$(fb_adopt "$(exe "$1")" "$pat" "$(pidfile "$1")")"
	printf '%s\n' "$pid"
}

# ---- probes: one bounded check each ------------------------------------------------------

# chq NODE SQL: one query on a ClickHouse node, bounded.
chq() {
	timeout 10 clickhouse-client --host "$FIRMBRIDGE_HOST" --port "$(port "$1")" \
		--connect_timeout 2 --query "$2" 2>/dev/null
}

# zk_srvr: ZooKeeper's `srvr` answer (empty if it does not answer within 3 s).
zk_srvr() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf srvr >&3 && cat <&3' _ \
		"$FIRMBRIDGE_HOST" "$FIRMBRIDGE_ZK_PORT" 2>/dev/null || true
}

# probe NODE [KAFKAREADY_FLAGS...]: true if the node serves: ZooKeeper says it is in a
# mode (standalone), ClickHouse answers SELECT 1, a broker lists itself as live.
probe() {
	local node=$1 out
	shift
	case "$(kind "$node")" in
	zk)
		out="$(zk_srvr)"
		[[ $out == *"Mode: "* ]]
		;;
	ch) [[ $(chq "$node" 'SELECT 1' || true) == 1 ]] ;;
	kafka) "$READY" -addr "$(addr "$node")" -timeout 2s -q -self "$@" 2>/dev/null ;;
	esac
}

# ---- installing and preparing --------------------------------------------------------------

ensure_zk() {
	local jar
	if ! compgen -G '/usr/share/java/zookeeper*.jar' >/dev/null; then
		fb_apt_install zookeeper
	fi
	for jar in ${ZK_CP//:/ }; do
		[[ -f $jar ]] && continue
		# The binding and log4j are dependencies of the package; install them if someone removed them.
		fb_apt_install zookeeper libslf4j-java liblog4j1.2-java
		[[ -f $jar ]] || fb_die "$jar is missing after apt-get install zookeeper; check the package's files with dpkg -L libzookeeper-java"
	done
	check_java
}

# ensure KIND...: install or build what nodes of these kinds need.
ensure() {
	local k
	command -v ss >/dev/null 2>&1 || fb_apt_install iproute2
	for k in "$@"; do
		case $k in
		zk) ensure_zk ;;
		ch) fb_ensure_clickhouse ;;
		kafka)
			check_java
			ensure_ready_tool
			ensure_lib
			;;
		esac
	done
}

kinds_of() {
	local node
	for node in "$@"; do kind "$node"; done | sort -u
}

voters() {
	local n out=""
	for n in 1 2 3; do
		local var=FIRMBRIDGE_KAFKA${n}_CONTROLLER_PORT
		out+="${out:+,}$n@$FIRMBRIDGE_HOST:${!var}"
	done
	printf '%s\n' "$out"
}

# kafka_cluster_id: the one id all three brokers are formatted with; kept in a file,
# recovered from a formatted broker if the file was lost, made anew otherwise.
kafka_cluster_id() {
	local id="" f
	if [[ -s $KAFKA_CLUSTER_ID_FILE ]]; then
		id="$(<"$KAFKA_CLUSTER_ID_FILE")"
	else
		for f in "$CDIR"/kafka[123]/data/meta.properties; do
			[[ -f $f ]] || continue
			id="$(sed -n 's/^cluster\.id=//p' "$f" | head -n 1)"
			[[ -n $id ]] && break
		done
		if [[ -z $id ]]; then
			id="$("$JAVA" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
		fi
		[[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] ||
			fb_die "kafka.tools.StorageTool random-uuid printed '$id', not a cluster id; check the jars in $LIB"
		mkdir -p "$CDIR"
		echo "$id" >"$KAFKA_CLUSTER_ID_FILE"
	fi
	printf '%s\n' "$id"
}

# prepare NODE: data dirs and the rendered config (and, for a broker, formatted storage).
prepare() {
	local node=$1 dir=$CDIR/$1 n=${1//[!0-9]/} id out
	mkdir -p "$dir" "$CLOG" "$CRUN"
	case "$(kind "$node")" in
	zk)
		mkdir -p "$dir/data"
		fb_render "$CTPL/zoo.cfg" "$dir/zoo.cfg" \
			DATA_DIR="$dir/data" HOST="$FIRMBRIDGE_HOST" PORT="$FIRMBRIDGE_ZK_PORT"
		;;
	ch)
		mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
		local tcp=FIRMBRIDGE_CH${n}_TCP_PORT http=FIRMBRIDGE_CH${n}_HTTP_PORT inter=FIRMBRIDGE_CH${n}_INTERSERVER_PORT
		fb_render "$CTPL/clickhouse.xml" "$dir/config.xml" \
			LOG="$(logfile "$node")" ERRLOG="$CLOG/$node.err.log" HOST="$FIRMBRIDGE_HOST" \
			TCP_PORT="${!tcp}" HTTP_PORT="${!http}" INTERSERVER_PORT="${!inter}" \
			DATA_DIR="$dir/data" TMP_DIR="$dir/tmp" USER_FILES_DIR="$dir/user_files" \
			FORMAT_SCHEMA_DIR="$dir/format_schemas" ZK_PORT="$FIRMBRIDGE_ZK_PORT" \
			ZK_SESSION_TIMEOUT_MS="$FIRMBRIDGE_CLUSTER_ZK_SESSION_TIMEOUT_MS" REPLICA="$node" \
			CLUSTER="$FIRMBRIDGE_CLUSTER_NAME" CH1_TCP_PORT="$FIRMBRIDGE_CH1_TCP_PORT" \
			CH2_TCP_PORT="$FIRMBRIDGE_CH2_TCP_PORT"
		fb_render "$FIRMBRIDGE_LOCAL_DIR/clickhouse/users.xml" "$dir/users.xml"
		;;
	kafka)
		mkdir -p "$dir/data"
		local p=FIRMBRIDGE_KAFKA${n}_PORT c=FIRMBRIDGE_KAFKA${n}_CONTROLLER_PORT
		fb_render "$CTPL/kafka.properties" "$dir/server.properties" \
			NODE_ID="$n" VOTERS="$(voters)" HOST="$FIRMBRIDGE_HOST" PORT="${!p}" \
			CONTROLLER_PORT="${!c}" LOG_DIRS="$dir/data"
		# Formatted once; meta.properties marks it as done. All three with one id.
		[[ -f $dir/data/meta.properties ]] && return 0
		id="$(kafka_cluster_id)"
		local -a opts
		mapfile -t opts < <(java_opts "$(logfile "$node")" "$CLOG")
		if ! out="$("$JAVA" "${opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" 2>&1)"; then
			printf '%s\n' "$out" >&2
			fb_die "formatting $dir/data failed (output above); if it holds an old cluster, run '$0 reset'"
		fi
		fb_say "formatted $dir/data for Kafka cluster $id"
		;;
	esac
}

# detach DIR OUT CMD...: fb_launch (env.sh) that also closes every descriptor above 2
# in the server: a JVM keeps what it inherits, and a caller's pipe (say, the one of
# `$(cluster.sh up)`) held open by a server would hang that caller for good.
detach() {
	local dir=$1 out=$2
	shift 2
	(
		local f n
		for f in "/proc/$BASHPID/fd"/*; do
			n=${f##*/}
			if ((n > 2)) && [[ -e $f ]]; then exec {n}>&-; fi
		done
		cd "$dir" && exec setsid nohup "$@" >>"$out" 2>&1 </dev/null
	) &
	FB_LAUNCHED_PID=$!
}

# launch NODE: start the prepared node's process in the background (not waiting) and
# record its pid.
launch() {
	local node=$1 dir=$CDIR/$1 pid
	local -a heap opts
	case "$(kind "$node")" in
	zk)
		read -r -a heap <<<"$FIRMBRIDGE_ZK_HEAP_OPTS"
		detach "$dir" "$(outfile "$node")" "$JAVA" "${heap[@]}" \
			"-Dlog4j.configuration=file:$CTPL/zk-log4j.properties" \
			"-Dfirmbridge.zk.log=$(logfile "$node")" "-Dzookeeper.log.dir=$CLOG" \
			-Dzookeeper.admin.enableServer=false -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
			-cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
		;;
	ch)
		detach "$dir" "$(outfile "$node")" "$(fb_clickhouse_server)" --config-file="$dir/config.xml"
		;;
	kafka)
		read -r -a heap <<<"$FIRMBRIDGE_CLUSTER_KAFKA_HEAP_OPTS"
		mapfile -t opts < <(java_opts "$(logfile "$node")" "$CLOG")
		# log4j2's own shutdown hook would stop the log file while Kafka's hook still
		# shuts down, and how a broker shuts down is what fault tests want to read.
		detach "$dir" "$(outfile "$node")" "$JAVA" "${heap[@]}" \
			-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
			"${opts[@]}" -Dlog4j2.shutdownHookEnabled=false \
			-cp "$LIB/*" kafka.Kafka "$dir/server.properties"
		;;
	esac
	pid=$FB_LAUNCHED_PID
	echo "$pid" >"$(pidfile "$node")"
}

# ---- start, wait, stop -------------------------------------------------------------------------

bound_of() {
	case "$(kind "$1")" in
	zk) echo "$FIRMBRIDGE_ZK_START_TIMEOUT" ;;
	ch) echo "$FIRMBRIDGE_CH_START_TIMEOUT" ;;
	kafka) echo "$FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT" ;;
	esac
}

running_brokers() {
	local b count=0
	for b in "${BROKERS[@]}"; do
		[[ -n $(our_pid "$b") ]] && count=$((count + 1))
	done
	echo "$count"
}

# start_nodes NODE...: launch those not running (all at once: the brokers need each
# other for a quorum), then wait, each within its bound, until every one is ready.
start_nodes() {
	local node pid var running_ports
	local -a vars kinds launch_list=()
	declare -A began=() deadline=() pids=()
	mapfile -t kinds < <(kinds_of "$@")
	ensure "${kinds[@]}"
	for node in "$@"; do
		pid="$(our_pid "$node")"
		if [[ -n $pid ]]; then
			# Started with other ports than asked for now: say so instead of waiting in vain.
			# (Only once it listens at all: a node still starting has no ports yet.)
			running_ports="$(fb_pid_ports "$pid")"
			if [[ -n $running_ports ]] && ! fb_pid_listens "$pid" "$(port "$node")"; then
				fb_die "$node already runs (pid $pid) on port(s) $running_ports, not $(port "$node"); run '$0 stop $node' first to change its ports"
			fi
			pids[$node]=$pid
			continue
		fi
		rm -f "$(pidfile "$node")"
		read -r -a vars <<<"$(port_vars "$node")"
		for var in "${vars[@]}"; do fb_check_port "${!var}" "$var"; done
		launch_list+=("$node")
	done
	# Configs and broker formatting first, so the startup times below are the servers' own.
	for node in "${launch_list[@]}"; do prepare "$node"; done
	for node in "${launch_list[@]}"; do
		launch "$node"
		pids[$node]=$FB_LAUNCHED_PID
		began[$node]=$SECONDS
	done
	for node in "$@"; do deadline[$node]=$((SECONDS + $(bound_of "$node"))); done

	# A lone broker cannot elect a controller: fail now with the remedy, not after the bound.
	for node in "${launch_list[@]}"; do
		if [[ $(kind "$node") == kafka ]] && (($(running_brokers) < 2)); then
			fb_die "$node is launched (pid ${pids[$node]}) but cannot become ready alone: a broker needs 2 of the 3 controllers (kafka1..3) running; start another one too ('$0 start kafka1 kafka2') or run '$0 up'"
		fi
	done

	local -a pending=("$@") left
	while ((${#pending[@]} > 0)); do
		left=()
		for node in "${pending[@]}"; do
			pid=${pids[$node]}
			if ! alive "$pid"; then
				fb_log_tail "$(outfile "$node")" 20
				fb_log_tail "$(logfile "$node")" 40
				rm -f "$(pidfile "$node")"
				fb_die "$node (pid $pid) exited during startup; the cause is in the lines above (from $(outfile "$node") and $(logfile "$node"))"
			fi
			if probe "$node"; then
				if [[ -n ${began[$node]:-} ]]; then
					fb_say "started $node (pid $pid) on $(addr "$node") in $((SECONDS - began[$node]))s"
				else
					fb_say "$node already running (pid $pid) on $(addr "$node")"
				fi
			elif ((SECONDS >= deadline[$node])); then
				fb_log_tail "$(logfile "$node")" 40
				local hint=""
				[[ $(kind "$node") == kafka ]] && hint=" (a broker needs 2 of the 3 controllers kafka1..3 running)"
				fb_die "$node (pid $pid) did not answer on $(addr "$node") within $(bound_of "$node")s$hint; see $(logfile "$node"), then '$0 stop $node'"
			else
				left+=("$node")
			fi
		done
		pending=("${left[@]}")
		((${#pending[@]} > 0)) && sleep 0.5
	done
	return 0
}

# stop_nodes SIGNAL NODE...: signal every running node once (at once: brokers shut down
# faster together), wait for them all, bounded for TERM, then SIGKILL what is left.
# A broker shuts down gracefully only while a controller quorum (2 of 3) lives to ack
# its controlled shutdown; the last broker left would wait 5 minutes for that, so it
# gets LONE_GRACE seconds (after the others are gone) and then SIGKILL.
LONE_GRACE=10
stop_nodes() {
	local sig=$1 node pid i any bound lone="" lone_since="" b
	shift
	declare -A pids=()
	for node in "$@"; do
		pid="$(our_pid "$node")"
		if [[ -z $pid ]]; then
			rm -f "$(pidfile "$node")"
			fb_say "$node not running"
			continue
		fi
		pids[$node]=$pid
	done
	((${#pids[@]} > 0)) || return 0
	# Does this stop take every running broker down? Then the last one of them is alone.
	local -a stopping_brokers=()
	for b in "${BROKERS[@]}"; do
		if [[ -n ${pids[$b]:-} ]]; then
			stopping_brokers+=("$b")
		elif [[ -n $(our_pid "$b") ]]; then
			stopping_brokers=()
			break
		fi
	done
	if [[ $sig == TERM && ${#stopping_brokers[@]} -eq 1 ]]; then
		fb_say "${stopping_brokers[0]} is the only broker left: with no controller quorum it cannot finish a controlled shutdown; giving it 3s, then SIGKILL"
		lone=${stopping_brokers[0]}
		lone_since=$((SECONDS - LONE_GRACE + 3))
	fi
	for node in "${!pids[@]}"; do kill "-$sig" "${pids[$node]}" 2>/dev/null || true; done
	bound=$FIRMBRIDGE_STOP_TIMEOUT
	[[ $sig == KILL ]] && bound=10
	for ((i = 0; i < bound * 5; i++)); do
		any=""
		for node in "${!pids[@]}"; do alive "${pids[$node]}" && any=1; done
		[[ -n $any ]] || break
		if [[ $sig == TERM && ${#stopping_brokers[@]} -gt 1 && -z $lone ]]; then
			local -a left=()
			for b in "${stopping_brokers[@]}"; do alive "${pids[$b]}" && left+=("$b"); done
			if ((${#left[@]} == 1)); then
				lone=${left[0]}
				lone_since=$SECONDS
			fi
		fi
		if [[ -n $lone ]] && alive "${pids[$lone]}" && ((SECONDS - lone_since >= LONE_GRACE)); then
			fb_say "$lone (pid ${pids[$lone]}) is the last broker and has no controller quorum to ack its controlled shutdown; sending SIGKILL"
			kill -KILL "${pids[$lone]}" 2>/dev/null || true
			lone=""
		fi
		sleep 0.2
	done
	for node in "$@"; do
		[[ -n ${pids[$node]:-} ]] || continue
		pid=${pids[$node]}
		if alive "$pid"; then
			fb_say "$node (pid $pid) ignored SIG$sig for ${bound}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
		rm -f "$(pidfile "$node")"
		if [[ $sig == KILL ]]; then
			fb_say "killed $node (was pid $pid)"
		else
			fb_say "stopped $node (was pid $pid)"
		fi
	done
}

# ---- cluster-wide -------------------------------------------------------------------------------

print_env() {
	local b brokers=""
	for b in "${BROKERS[@]}"; do brokers+="${brokers:+,}$(addr "$b")"; done
	printf '%s\n' \
		"FIRMBRIDGE_CLICKHOUSE_ADDR=$(addr ch1),$(addr ch2)" \
		"FIRMBRIDGE_CLICKHOUSE_CLUSTER=$FIRMBRIDGE_CLUSTER_NAME" \
		"FIRMBRIDGE_KAFKA_BROKERS=$brokers" \
		"FIRMBRIDGE_KAFKA_REPLICATION_FACTOR=3" \
		"FIRMBRIDGE_KAFKA_MIN_INSYNC_REPLICAS=2"
}

# wait_cluster: beyond each node answering, the brokers see all three, and both
# ClickHouse nodes know the cluster and reach ZooKeeper.
wait_cluster() {
	local until=$((SECONDS + FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT)) node ok
	while :; do
		ok=1
		for node in "${BROKERS[@]}"; do probe "$node" -brokers 3 || ok=""; done
		for node in ch1 ch2; do
			[[ $(chq "$node" "SELECT count() FROM system.clusters WHERE cluster = '$FIRMBRIDGE_CLUSTER_NAME'" || true) == 2 ]] || ok=""
			[[ $(chq "$node" "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'" || true) == 1 ]] || ok=""
		done
		[[ -n $ok ]] && return 0
		if ((SECONDS >= until)); then
			for node in "${BROKERS[@]}"; do "$READY" -addr "$(addr "$node")" -timeout 2s -self -brokers 3 >&2 || true; done
			for node in ch1 ch2; do
				printf '%s: cluster rows %s, zookeeper reachable %s\n' "$node" \
					"$(chq "$node" "SELECT count() FROM system.clusters WHERE cluster = '$FIRMBRIDGE_CLUSTER_NAME'" || echo '?')" \
					"$(chq "$node" "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'" || echo no)" >&2
			done
			fb_die "every node answers, but the cluster did not come together within ${FIRMBRIDGE_CLUSTER_KAFKA_START_TIMEOUT}s (state above); see the logs in $CLOG"
		fi
		sleep 1
	done
}

# up: start everything; progress goes to stderr (see the dispatch below), the settings
# alone to stdout. (Not with a saved stdout fd: the servers would inherit it and hold
# the caller's $(...) open forever.)
up() {
	local started=$SECONDS
	ensure zk ch kafka
	start_nodes zk
	start_nodes ch1 ch2 kafka1 kafka2 kafka3
	wait_cluster
	fb_say "cluster up in $((SECONDS - started))s: zk $(addr zk), ClickHouse cluster '$FIRMBRIDGE_CLUSTER_NAME' (ch1, ch2), Kafka kafka1..3; logs in $CLOG"
}

down() {
	stop_nodes TERM "${BROKERS[@]}"
	stop_nodes TERM ch1 ch2
	stop_nodes TERM zk
}

status() {
	local node pid rc=0 info
	ensure_ready_tool
	for node in "${NODES[@]}"; do
		pid="$(our_pid "$node")"
		if [[ -z $pid ]]; then
			fb_say "$node: not running"
			rc=1
			continue
		fi
		case "$(kind "$node")" in
		zk) info="$(zk_srvr | sed -n 's/^Mode: /mode /p')" ;;
		ch)
			info="$(chq "$node" 'SELECT version()' || true)"
			if [[ -n $info ]]; then
				info="version $info, cluster '$FIRMBRIDGE_CLUSTER_NAME' $(chq "$node" "SELECT count() FROM system.clusters WHERE cluster = '$FIRMBRIDGE_CLUSTER_NAME'" || echo '?') replica(s), zookeeper"
				if [[ $(chq "$node" "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'" || true) == 1 ]]; then
					info+=" reachable"
				else
					info+=" NOT reachable"
				fi
			fi
			;;
		kafka) info="$("$READY" -addr "$(addr "$node")" -timeout 2s -self 2>&1 | sed 's/^kafkaready: //')" || info="" ;;
		esac
		if [[ -n $info ]] && probe "$node"; then
			fb_say "$node: running (pid $pid) on $(addr "$node"), $info"
		else
			fb_say "$node: pid $pid is alive but does not answer on $(addr "$node"); see $(logfile "$node")"
			rc=1
		fi
	done
	return "$rc"
}

reset() {
	down
	case $CDIR in
	"" | / | "$HOME" | "$FIRMBRIDGE_HOME" | "$FIRMBRIDGE_REPO") fb_die "refusing to delete FIRMBRIDGE_CLUSTER_DIR=$CDIR; point it at the cluster's own folder" ;;
	esac
	rm -rf "$CDIR" "$CLOG"
	rm -f "$CRUN"/*.pid
	fb_say "deleted the cluster's data ($CDIR) and logs ($CLOG)"
}

# lock: one start/stop at a time for the whole cluster (kill, pid, status, env take none).
lock() {
	mkdir -p "$CRUN"
	fb_lock cluster/cluster
}

usage() {
	fb_die "usage: $0 up|down|status|reset|env, or $0 start|stop|kill NODE... or $0 pid NODE (NODE: ${NODES[*]})"
}

cmd=${1:-}
if [[ $# -gt 0 ]]; then shift; fi
case $cmd in
up | down | reset | env | status) [[ $# -eq 0 ]] || usage ;;
start | stop | kill)
	[[ $# -gt 0 ]] || usage
	for n in "$@"; do check_node "$n"; done
	;;
pid)
	[[ $# -eq 1 ]] || usage
	check_node "$1"
	;;
*) usage ;;
esac

case $cmd in
up)
	lock
	up >&2
	print_env
	;;
down)
	lock
	down
	;;
reset)
	lock
	reset
	;;
status) status ;;
env) print_env ;;
start)
	lock
	start_nodes "$@"
	;;
stop)
	lock
	stop_nodes TERM "$@"
	;;
kill) stop_nodes KILL "$@" ;;
pid)
	p="$(our_pid "$1")"
	[[ -n $p ]] || fb_die "$1 is not running"
	printf '%s\n' "$p"
	;;
esac
