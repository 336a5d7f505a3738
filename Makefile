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
