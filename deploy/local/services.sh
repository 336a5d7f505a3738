#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# All local services of firmbridge at once: ClickHouse, then Kafka.
#
#   deploy/local/services.sh up|down|status
#
# up starts what is not running yet (each start is a no-op when already up);
# down stops both (each a no-op when not running); status exits 0 only if both answer.
# Ports, folders and timeouts: deploy/local/env.sh (all overridable from the environment).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"

case "${1:-}" in
up)
	"$here/clickhouse.sh" start
	"$here/kafka.sh" start
	;;
down)
	# Stop Kafka first (it was started last); try both even if one fails.
	rc=0
	"$here/kafka.sh" stop || rc=1
	"$here/clickhouse.sh" stop || rc=1
	exit "$rc"
	;;
status)
	rc=0
	"$here/clickhouse.sh" status || rc=1
	"$here/kafka.sh" status || rc=1
	exit "$rc"
	;;
*)
	echo "services: usage: $0 up|down|status" >&2
	exit 1
	;;
esac
