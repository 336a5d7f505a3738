#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The cluster-mode tests, against the local cluster of cluster.sh (ZooKeeper,
# two ClickHouse replicas, three Kafka brokers). Starts the cluster if it is
# not running and stops it again afterwards if it started it, also when a
# test fails. `make test` (deploy/local/test.sh) runs this after the single-node tests.
#
#   deploy/local/test-cluster.sh [go test flags...]   default: the fault tests
#                                                     of cmd/firmbridge and the
#                                                     schema package on the cluster
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
FB_NAME="test-cluster"
# shellcheck source=env.sh
source "$here/env.sh"
cd "$FIRMBRIDGE_REPO"

command -v go >/dev/null 2>&1 || fb_die "go is not on PATH; install the Go toolchain (1.26 or later)"

started=0
cleanup() {
	local rc=$?
	if ((started)); then
		"$here/cluster.sh" down || true
	fi
	exit "$rc"
}
trap cleanup EXIT
if ! "$here/cluster.sh" status >/dev/null 2>&1; then
	started=1
	"$here/cluster.sh" up
fi

# The cluster's addresses, cluster name and topic replication settings
# replace whatever single-node settings the caller exported.
set -a
eval "$("$here/cluster.sh" env)"
set +a
fb_say "go test in cluster mode (ClickHouse $FIRMBRIDGE_CLICKHOUSE_ADDR on cluster $FIRMBRIDGE_CLICKHOUSE_CLUSTER, Kafka $FIRMBRIDGE_KAFKA_BROKERS)"
if [[ $# -gt 0 ]]; then
	go test -count=1 -timeout 30m -tags cluster "$@"
	exit 0
fi
# The schema package's own tests on replicated and Distributed tables: reads,
# writes and migrations as on one server.
go test -count=1 -timeout 15m ./schema/
# -v: the fault tests log what they measured (failover times, counts).
go test -count=1 -timeout 30m -tags cluster -run '^TestCluster' -v ./cmd/firmbridge/
