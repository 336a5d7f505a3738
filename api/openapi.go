package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/firmbridge/firmbridge"
)

// openAPIYAML is the API's OpenAPI 3 document, written by hand next to the
// handlers. openapi_test.go keeps it true: its routes must equal the
// router's, and real responses must validate against it.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// LoadOpenAPI loads the embedded OpenAPI document and validates it with
// kin-openapi. Each call returns a fresh copy the caller may change.
// `firmbridge serve` can call it at start-up to refuse a broken build.
func LoadOpenAPI(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi: load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapi: api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	return doc, nil
}

// apiDocs is what /openapi.json and /docs serve, made once per process.
type apiDocs struct {
	json []byte // the document as JSON
	html []byte // the readable page
}

var (
	apiDocsOnce sync.Once
	apiDocsVal  *apiDocs
	apiDocsErr  error
)

// loadAPIDocs loads, validates and renders the document once.
func loadAPIDocs() (*apiDocs, error) {
	apiDocsOnce.Do(func() {
		apiDocsVal, apiDocsErr = buildAPIDocs(context.Background())
	})
	return apiDocsVal, apiDocsErr
}

func buildAPIDocs(ctx context.Context) (*apiDocs, error) {
	doc, err := LoadOpenAPI(ctx)
	if err != nil {
		return nil, err
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: encode the document as JSON: %w", err)
	}
	page, err := renderDocs(doc)
	if err != nil {
		return nil, err
	}
	return &apiDocs{json: js, html: page}, nil
}

// errDocsUnavailable answers /openapi.json and /docs when the embedded
// document did not load: a defect of the build, which the tests catch.
var errDocsUnavailable = firmbridge.Errorf(firmbridge.EINTERNAL, "openapi_unavailable",
	"the API description could not be loaded; see the server's log")

// openAPIHandler serves GET /openapi.json. The document is loaded when the
// router is built, so a broken document is logged at start-up.
func (s *Server) openAPIHandler() gin.HandlerFunc {
	docs, err := s.apiDocs()
	return func(c *gin.Context) {
		if err != nil {
			writeError(c, s.logger(), errDocsUnavailable)
			return
		}
		c.Data(http.StatusOK, "application/json", docs.json)
	}
}

// docsHandler serves GET /docs: the document as one self-contained HTML
// page, which the Content-Security-Policy keeps from loading anything.
func (s *Server) docsHandler() gin.HandlerFunc {
	docs, err := s.apiDocs()
	return func(c *gin.Context) {
		if err != nil {
			writeError(c, s.logger(), errDocsUnavailable)
			return
		}
		c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Data(http.StatusOK, "text/html; charset=utf-8", docs.html)
	}
}

func (s *Server) apiDocs() (*apiDocs, error) {
	docs, err := loadAPIDocs()
	if err != nil {
		s.logger().Error("the OpenAPI document does not load; /openapi.json and /docs answer 500", "err", err)
	}
	return docs, err
}
