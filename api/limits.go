package api

import (
	"bytes"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// DefaultMaxBodyBytes bounds a JSON request body: a consent or a client
// registration is a few hundred bytes; a batch of 500 firms, some 20 KiB.
const DefaultMaxBodyBytes int64 = 1 << 20

// ownBodyLimit lists the routes that enforce a limit of their own and
// stream their bodies; limitBody leaves them alone.
var ownBodyLimit = map[string]bool{
	"/v1/ingest/:source": true,
}

func (s *Server) maxBodyBytes() int64 {
	if s.MaxBodyBytes > 0 {
		return s.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// limitBody refuses a body larger than MaxBodyBytes with 413. It reads the
// body here rather than wrapping it, so the refusal is one clear answer
// instead of a decode error in whichever handler reads first; bodies under
// the limit are small enough to hold.
func (s *Server) limitBody(c *gin.Context) {
	body := c.Request.Body
	if body == nil || body == http.NoBody || ownBodyLimit[c.FullPath()] {
		c.Next()
		return
	}
	limit := s.maxBodyBytes()
	tooLarge := firmbridge.Errorf(firmbridge.ETOOLARGE, "body_too_large", "the request body may have at most %d bytes", limit)
	if c.Request.ContentLength > limit {
		s.deny(c, tooLarge)
		return
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	_ = body.Close()
	if err != nil {
		s.deny(c, firmbridge.Errorf(firmbridge.EINVALID, "body_unreadable", "the request body could not be read"))
		return
	}
	if int64(len(data)) > limit {
		s.deny(c, tooLarge)
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(data))
	c.Next()
}
