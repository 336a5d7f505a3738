// Command kafkaready reports whether a Kafka broker answers a metadata request.
// deploy/local/kafka.sh runs it to know when the local broker is ready:
//
//	kafkaready -addr 127.0.0.1:19092 -timeout 5s
//
// It exits 0 when the broker listed a broker and a controller, and 1 with the
// error otherwise. It makes one attempt; the caller decides how long to retry.
// For a cluster (deploy/local/cluster.sh), -brokers N also asks that the metadata
// list at least N live brokers, and -self that it list the broker at -addr itself
// (registered and unfenced, so it serves again after a restart):
//
//	kafkaready -addr 127.0.0.1:19192 -brokers 3 -self
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:19092", "broker address host:port")
	timeout := flag.Duration("timeout", 5*time.Second, "bound for the whole check")
	quiet := flag.Bool("q", false, "print nothing on success")
	want := flag.Int("brokers", 1, "least number of live brokers the metadata must list")
	self := flag.Bool("self", false, "the metadata must list the broker at -addr itself")
	flag.Parse()

	brokers, controller, err := check(*addr, *timeout)
	if err == nil {
		err = enough(brokers, *addr, *want, *self)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkaready: broker %s not ready: %v\n", *addr, err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("kafkaready: broker %s ready: %d broker(s), controller %s\n",
			*addr, len(brokers), net.JoinHostPort(controller.Host, fmt.Sprint(controller.Port)))
	}
}

// check dials addr and reads the cluster metadata (brokers and controller).
func check(addr string, timeout time.Duration) ([]kafka.Broker, kafka.Broker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dialer := &kafka.Dialer{Timeout: timeout, ClientID: "firmbridge-kafkaready"}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, kafka.Broker{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, kafka.Broker{}, err
	}
	brokers, err := conn.Brokers()
	if err != nil {
		return nil, kafka.Broker{}, err
	}
	if len(brokers) == 0 {
		return nil, kafka.Broker{}, errors.New("metadata lists no broker yet")
	}
	controller, err := conn.Controller()
	if err != nil {
		return nil, kafka.Broker{}, err
	}
	if controller.Host == "" {
		return nil, kafka.Broker{}, errors.New("metadata names no controller yet")
	}
	return brokers, controller, nil
}

// enough checks the broker list against -brokers and -self.
func enough(brokers []kafka.Broker, addr string, want int, self bool) error {
	if len(brokers) < want {
		return fmt.Errorf("metadata lists %d live broker(s), want %d", len(brokers), want)
	}
	if !self {
		return nil
	}
	for _, b := range brokers {
		if net.JoinHostPort(b.Host, fmt.Sprint(b.Port)) == addr {
			return nil
		}
	}
	return fmt.Errorf("metadata does not list %s itself among %d live broker(s) yet", addr, len(brokers))
}
