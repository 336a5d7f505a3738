// Command kafkaready reports whether a Kafka broker answers a metadata request.
// deploy/local/kafka.sh runs it to know when the local broker is ready:
//
//	kafkaready -addr 127.0.0.1:19092 -timeout 5s
//
// It exits 0 when the broker listed itself and a controller, and 1 with the
// error otherwise. It makes one attempt; the caller decides how long to retry.
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
	flag.Parse()

	brokers, controller, err := check(*addr, *timeout)
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
