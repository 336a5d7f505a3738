# The two commands of the README, and their companions. Each target is a
# thin wrapper over a script in deploy/local, which works without make too.
.PHONY: up test down reset status build

up:      ## start ClickHouse, Kafka, ingest workers, the API, and demo data
	@deploy/local/platform.sh up

test:    ## gofmt, go vet and every test against real ClickHouse and Kafka
	@deploy/local/test.sh

down:    ## stop everything `make up` started
	@deploy/local/platform.sh down

reset:   ## stop everything and delete all local data, logs and keys
	@deploy/local/platform.sh reset

status:
	@deploy/local/platform.sh status

build:
	go build -o .local/bin/firmbridge ./cmd/firmbridge

# A local cluster for replication and fault tests (ZooKeeper, two ClickHouse
# replicas, three Kafka brokers), beside the single-node services above.
.PHONY: cluster-up cluster-down cluster-status

cluster-up:      ## start the local cluster; prints the FIRMBRIDGE_* settings a client needs
	@deploy/local/cluster.sh up

cluster-down:    ## stop the local cluster (its data stays)
	@deploy/local/cluster.sh down

cluster-status:
	@deploy/local/cluster.sh status

.PHONY: test-cluster up-cluster down-cluster

test-cluster:    ## the cluster-mode tests (schema on replicated tables, fault tests); starts the cluster if needed
	@deploy/local/test-cluster.sh

up-cluster:      ## `make up` on the local cluster instead of the single-node services
	@FIRMBRIDGE_CLUSTER_MODE=1 deploy/local/platform.sh up

down-cluster:    ## stop what `make up-cluster` started
	@FIRMBRIDGE_CLUSTER_MODE=1 deploy/local/platform.sh down
