# shellcheck shell=bash
# What the single broker (kafka.sh) and the local cluster (cluster.sh) share: the Java
# check, the jars that Maven fetches once for both (same pom, same lib folder and stamp),
# the readiness tool and the JVM's logging options. Sourced after env.sh; not meant to be run.

KAFKA_TEMPLATES=$FIRMBRIDGE_LOCAL_DIR/kafka
POM=$KAFKA_TEMPLATES/pom.xml
LIB=$FIRMBRIDGE_KAFKA_DIR/lib
LIB_STAMP=$FIRMBRIDGE_KAFKA_DIR/lib.sha256
MVNLOG=$FIRMBRIDGE_LOG_DIR/kafka-mvn.log
READY=$FIRMBRIDGE_BIN_DIR/kafkaready

JAVA=java
[[ -n ${JAVA_HOME:-} && -x ${JAVA_HOME:-}/bin/java ]] && JAVA=$JAVA_HOME/bin/java

check_java() {
	local version major
	command -v "$JAVA" >/dev/null 2>&1 ||
		fb_die "java not found; install Java 17 or later (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
	version="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
	major=${version%%.*}
	# Java 8 and older report themselves as 1.x.
	[[ $major == 1 ]] && major="$(cut -d. -f2 <<<"$version")"
	[[ $major =~ ^[0-9]+$ ]] ||
		fb_die "cannot tell the version of $JAVA ('$version'); put Java 17 or later first in PATH or set JAVA_HOME"
	((major >= 17)) ||
		fb_die "$JAVA is Java $version but Kafka 4.1 needs 17 or later; install openjdk-17-jre-headless or set JAVA_HOME"
}

check_mvn() {
	command -v mvn >/dev/null 2>&1 || fb_apt_install maven
	command -v mvn >/dev/null 2>&1 ||
		fb_die "mvn not found and apt-get install maven did not provide it; install Maven 3.6+ by hand"
}

# lib_current: true if $LIB holds the jars of the current pom.
lib_current() {
	[[ -d $LIB && -f $LIB_STAMP && $(<"$LIB_STAMP") == "$(sha256sum "$POM" | cut -d' ' -f1)" ]]
}

# ensure_lib: copy the broker's jars into $LIB unless they match the current pom.
# kafka.sh and cluster.sh may run at once: a lock of its own keeps them from
# fetching into the same folder together (each holds its own start lock, not this one).
ensure_lib() {
	local want lock_fd
	lib_current && return 0
	mkdir -p "$FIRMBRIDGE_KAFKA_DIR" "$FIRMBRIDGE_LOG_DIR" "$FIRMBRIDGE_RUN_DIR"
	exec {lock_fd}>"$FIRMBRIDGE_RUN_DIR/kafka-lib.lock"
	flock -w 600 "$lock_fd" ||
		fb_die "another fetch of the Kafka jars has held $FIRMBRIDGE_RUN_DIR/kafka-lib.lock for 600s; wait for it or end it"
	# The other one may have fetched them while we waited.
	if lib_current; then
		exec {lock_fd}>&-
		return 0
	fi
	want="$(sha256sum "$POM" | cut -d' ' -f1)"
	check_mvn
	fb_say "fetching the Kafka jars with Maven into $LIB (only when $POM changes)"
	rm -rf "$LIB.tmp"
	# Into a temporary folder first, so an interrupted fetch never looks complete.
	if ! mvn -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$LIB.tmp" >"$MVNLOG" 2>&1; then
		fb_log_tail "$MVNLOG" 30
		fb_die "mvn could not fetch the Kafka jars (see $MVNLOG); check access to Maven Central and the versions in $POM"
	fi
	rm -rf "$LIB"
	mv "$LIB.tmp" "$LIB"
	echo "$want" >"$LIB_STAMP"
	# Released before any server starts, so none inherits it.
	exec {lock_fd}>&-
}

# ensure_ready_tool: build kafkaready once (and again when its source changes).
ensure_ready_tool() {
	local src=$FIRMBRIDGE_LOCAL_DIR/kafkaready/main.go
	[[ -x $READY && ! $src -nt $READY ]] && return 0
	command -v go >/dev/null 2>&1 ||
		fb_die "go not found; install Go (see go.mod) to build deploy/local/kafkaready, the readiness check"
	mkdir -p "$FIRMBRIDGE_BIN_DIR"
	# Per-process temporary name: status may run this concurrently with a start.
	(cd "$FIRMBRIDGE_REPO" && go build -o "$READY.$$" ./deploy/local/kafkaready) ||
		fb_die "could not build deploy/local/kafkaready (go build errors above); fix go.mod/go.sum (it needs github.com/segmentio/kafka-go)"
	mv -f "$READY.$$" "$READY"
}

# java_opts LOGFILE LOGDIR: the system properties every Kafka JVM here gets (logging
# setup); the broker logs to LOGFILE (kafka.logs.dir=LOGDIR).
java_opts() {
	local log=$1 dir=$2
	printf '%s\n' "-Dlog4j2.configurationFile=$KAFKA_TEMPLATES/log4j2.xml" \
		"-Dkafka.logs.dir=$dir" "-Dfirmbridge.kafka.log=$log" \
		-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
}
