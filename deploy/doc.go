// Package deploy holds no code: it is the home of the deployment files
// (docker/Dockerfile, docker-compose.yml, k8s/) and of deploy_test.go, which
// checks them against the binary's source: every image pinned, every
// FIRMBRIDGE_* variable, subcommand and flag one that cmd/firmbridge really
// has, probes on the ports the processes really listen on, references
// between manifests that resolve, and a Dockerfile whose build compiles.
package deploy
