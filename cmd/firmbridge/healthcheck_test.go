package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready {
			http.Error(w, `{"status":"clickhouse down"}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out, &errOut); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	ready = false
	err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "clickhouse down") {
		t.Fatalf("unhealthy server: got %v, want an error naming 503 and the reason", err)
	}
	srv.Close()
	if err := run(context.Background(), []string{"healthcheck", "--url", srv.URL + "/readyz"}, &out, &errOut); err == nil {
		t.Fatal("closed server: no error")
	}
}
