#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Every check and test of the repository, against real ClickHouse and Kafka.
# Starts the services if they are not running and stops again exactly the
# ones it started, also when a test fails. `.ci/run` calls this.
#
#   deploy/local/test.sh [go test flags...]   e.g. -run TestProfile ./api/...
#
# Without arguments it then runs the cluster-mode tests (test-cluster.sh) on
# the local cluster of cluster.sh, after stopping the single-node services
# it started, so the two never compete for the machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
FB_NAME="test"
# shellcheck source=env.sh
source "$here/env.sh"
cd "$FIRMBRIDGE_REPO"

command -v go >/dev/null 2>&1 || fb_die "go is not on PATH; install the Go toolchain (1.26 or later)"

fb_say "gofmt"
unformatted="$(find . -name '*.go' -not -path './.local/*' -not -path './.git/*' -print0 | xargs -0 gofmt -l)"
if [[ -n $unformatted ]]; then
	fb_die "these files need gofmt -w: $unformatted"
fi
fb_say "go vet ./..."
go vet ./...

started=()
cleanup() {
	local rc=$?
	local svc
	for svc in "${started[@]}"; do
		"$here/$svc.sh" stop || true
	done
	exit "$rc"
}
trap cleanup EXIT
for svc in clickhouse kafka; do
	if ! "$here/$svc.sh" status >/dev/null 2>&1; then
		"$here/$svc.sh" start
		started+=("$svc")
	fi
done

export FIRMBRIDGE_CLICKHOUSE_ADDR="${FIRMBRIDGE_CLICKHOUSE_ADDR:-$FIRMBRIDGE_HOST:$FIRMBRIDGE_CH_TCP_PORT}"
export FIRMBRIDGE_KAFKA_BROKERS="${FIRMBRIDGE_KAFKA_BROKERS:-$FIRMBRIDGE_HOST:$FIRMBRIDGE_KAFKA_PORT}"
fb_say "go test (ClickHouse $FIRMBRIDGE_CLICKHOUSE_ADDR, Kafka $FIRMBRIDGE_KAFKA_BROKERS)"
if [[ $# -gt 0 ]]; then
	go test -count=1 -timeout 25m "$@"
	exit 0
fi
go test -count=1 -timeout 25m ./...

for svc in "${started[@]}"; do
	"$here/$svc.sh" stop
done
started=()
"$here/test-cluster.sh"
