package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/schema"
)

// failingRows yields n rows, then fails.
type failingRows struct {
	n, i int
	row  schema.AuditEventRow
}

func (r *failingRows) Next() bool {
	if r.i >= r.n {
		return false
	}
	r.i++
	r.row = schema.AuditEventRow{Chain: 1, Seq: uint64(r.i), AccessEvent: firmbridge.AccessEvent{EventID: fmt.Sprintf("ev-%d", r.i),
		OccurredAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}}
	return true
}

func (r *failingRows) Row() *schema.AuditEventRow { return &r.row }

func (r *failingRows) Err() error { return errors.New("clickhouse went away (test)") }

// TestAuditExport_ErrorMidStreamIsVisible: an export that fails after its
// first rows must not look complete: the trailer says error and the
// chunked body does not end properly.
func TestAuditExport_ErrorMidStreamIsVisible(t *testing.T) {
	s := &Server{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/export", func(c *gin.Context) {
		s.streamCSV(c, schema.AuditFilter{}, &failingRows{n: 3*exportFlushRows + 7})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("status %d, read error %v; want 200 and an unexpected EOF", resp.StatusCode, err)
	}
	if resp.Trailer.Get("X-Export-Status") == "complete" {
		t.Error("a failed export announced itself complete")
	}
	// What was flushed before the failure arrived, whole rows only.
	if lines := strings.Count(string(body), "\r\n"); lines < 1+exportFlushRows || !strings.HasSuffix(string(body), "\r\n") {
		t.Errorf("got %d lines before the cut, want at least %d whole ones", lines, 1+exportFlushRows)
	}
}
