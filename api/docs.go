package api

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"html/template"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The readable documentation at /docs is generated here, on the server,
// from the loaded OpenAPI document: one HTML page with inline CSS and no
// script or external resource, so that it renders on an isolated network.

//go:embed docs.html
var docsTemplateText string

type docsPage struct {
	Title       string
	Version     string
	Description template.HTML
	Tags        []docsTag
	Security    []docsSecurity
	Schemas     []docsSchema
}

type docsTag struct {
	Name        string
	Anchor      string
	Description template.HTML
	Ops         []docsOp
}

type docsSecurity struct {
	Name        string
	Kind        string
	Description template.HTML
}

type docsOp struct {
	Anchor      string
	ID          string
	Method      string
	Path        string
	Summary     string
	Description template.HTML
	Roles       []string
	Public      bool
	AccessEvent bool
	Security    []string
	Params      []docsParam
	Body        *docsBody
	Responses   []docsResponse
}

type docsParam struct {
	Name        string
	In          string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

type docsBody struct {
	Required    bool
	Description template.HTML
	Media       []docsMedia
}

type docsMedia struct {
	Type   string
	Schema template.HTML
	Fields []docsField // of an inline object schema
}

type docsResponse struct {
	Status      string
	Class       string // 2xx, 4xx, 5xx
	Description template.HTML
	Headers     []docsParam
	Media       []docsMedia
	Codes       []string
}

type docsSchema struct {
	Name        string
	Anchor      string
	Type        template.HTML
	Description template.HTML
	Fields      []docsField
}

type docsField struct {
	Name        string
	Required    bool
	Type        template.HTML
	Description template.HTML
}

// renderDocs renders the page for doc.
func renderDocs(doc *openapi3.T) ([]byte, error) {
	page := docsPage{Title: "API", Version: ""}
	if doc.Info != nil {
		page.Title, page.Version, page.Description = doc.Info.Title, doc.Info.Version, markdown(doc.Info.Description)
	}

	tagIndex := map[string]int{}
	for _, t := range doc.Tags {
		tagIndex[t.Name] = len(page.Tags)
		page.Tags = append(page.Tags, docsTag{Name: t.Name, Anchor: "tag-" + slug(t.Name), Description: markdown(t.Description)})
	}
	paths := doc.Paths.InMatchingOrder()
	slices.Sort(paths)
	for _, path := range paths {
		item := doc.Paths.Value(path)
		for _, method := range docsMethods {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			tag := "Other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			i, ok := tagIndex[tag]
			if !ok {
				i = len(page.Tags)
				tagIndex[tag] = i
				page.Tags = append(page.Tags, docsTag{Name: tag, Anchor: "tag-" + slug(tag)})
			}
			page.Tags[i].Ops = append(page.Tags[i].Ops, docsOperation(doc, path, method, item, op))
		}
	}
	page.Tags = slices.DeleteFunc(page.Tags, func(t docsTag) bool { return len(t.Ops) == 0 })

	if doc.Components != nil {
		names := make([]string, 0, len(doc.Components.SecuritySchemes))
		for name := range doc.Components.SecuritySchemes {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			s := doc.Components.SecuritySchemes[name].Value
			if s == nil {
				continue
			}
			kind := s.Type
			if s.Scheme != "" {
				kind += " " + s.Scheme
			}
			if s.BearerFormat != "" {
				kind += " (" + s.BearerFormat + ")"
			}
			page.Security = append(page.Security, docsSecurity{Name: name, Kind: kind, Description: markdown(s.Description)})
		}
		names = names[:0]
		for name := range doc.Components.Schemas {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			ref := doc.Components.Schemas[name]
			if ref.Value == nil {
				continue
			}
			page.Schemas = append(page.Schemas, docsSchema{Name: name, Anchor: "schema-" + name, Type: schemaType(&openapi3.SchemaRef{Value: ref.Value}),
				Description: markdown(ref.Value.Description), Fields: schemaFields(ref.Value)})
		}
	}

	tmpl, err := template.New("docs").Parse(docsTemplateText)
	if err != nil {
		return nil, fmt.Errorf("openapi: parse the /docs template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, page); err != nil {
		return nil, fmt.Errorf("openapi: render /docs: %w", err)
	}
	return b.Bytes(), nil
}

var docsMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func docsOperation(doc *openapi3.T, path, method string, item *openapi3.PathItem, op *openapi3.Operation) docsOp {
	o := docsOp{Anchor: "op-" + slug(method+" "+path), ID: op.OperationID, Method: method, Path: path, Summary: op.Summary,
		Description: markdown(op.Description)}
	if roles, ok := op.Extensions["x-roles"].([]any); ok {
		for _, r := range roles {
			o.Roles = append(o.Roles, fmt.Sprint(r))
		}
	}
	o.AccessEvent, _ = op.Extensions["x-access-event"].(bool)
	security := doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	for _, req := range security {
		if len(req) == 0 {
			o.Security = append(o.Security, "none")
			continue
		}
		names := make([]string, 0, len(req))
		for name := range req {
			names = append(names, name)
		}
		slices.Sort(names)
		o.Security = append(o.Security, strings.Join(names, " + "))
	}
	o.Public = len(o.Security) == 0 || (len(o.Security) == 1 && o.Security[0] == "none")

	// Path-level parameters first, unless the operation overrides them.
	params := slices.Clone(item.Parameters)
	for _, p := range op.Parameters {
		params = slices.DeleteFunc(params, func(q *openapi3.ParameterRef) bool {
			return q.Value != nil && p.Value != nil && q.Value.Name == p.Value.Name && q.Value.In == p.Value.In
		})
		params = append(params, p)
	}
	for _, p := range params {
		if p.Value == nil {
			continue
		}
		o.Params = append(o.Params, docsParam{Name: p.Value.Name, In: p.Value.In, Required: p.Value.Required,
			Type: schemaType(p.Value.Schema), Description: markdown(p.Value.Description)})
	}

	if op.RequestBody != nil && op.RequestBody.Value != nil {
		rb := op.RequestBody.Value
		o.Body = &docsBody{Required: rb.Required, Description: markdown(rb.Description), Media: docsContent(rb.Content)}
	}

	if op.Responses != nil {
		statuses := make([]string, 0, op.Responses.Len())
		for status := range op.Responses.Map() {
			statuses = append(statuses, status)
		}
		slices.Sort(statuses)
		for _, status := range statuses {
			ref := op.Responses.Value(status)
			if ref == nil || ref.Value == nil {
				continue
			}
			r := ref.Value
			resp := docsResponse{Status: status, Class: string(status[0]) + "xx", Media: docsContent(r.Content)}
			if r.Description != nil {
				resp.Description = markdown(*r.Description)
			}
			headers := make([]string, 0, len(r.Headers))
			for name := range r.Headers {
				headers = append(headers, name)
			}
			slices.Sort(headers)
			for _, name := range headers {
				h := r.Headers[name].Value
				if h == nil {
					continue
				}
				resp.Headers = append(resp.Headers, docsParam{Name: name, In: "header", Required: h.Required,
					Type: schemaType(h.Schema), Description: markdown(h.Description)})
			}
			for _, mt := range r.Content {
				if mt.Schema != nil {
					resp.Codes = appendCodes(resp.Codes, mt.Schema)
				}
			}
			o.Responses = append(o.Responses, resp)
		}
	}
	return o
}

func docsContent(content openapi3.Content) []docsMedia {
	types := make([]string, 0, len(content))
	for t := range content {
		types = append(types, t)
	}
	slices.Sort(types)
	var out []docsMedia
	for _, t := range types {
		m := docsMedia{Type: t, Schema: "any"}
		if s := content[t].Schema; s != nil {
			m.Schema = schemaType(s)
			if s.Ref == "" && s.Value != nil && len(s.Value.Properties) > 0 {
				m.Fields = schemaFields(s.Value)
			}
		}
		out = append(out, m)
	}
	return out
}

// ProblemCodes returns the stable error codes a response schema admits:
// the enum of the `code` (problem+json) or `error` (OAuth) property of its
// allOf parts, in the document's order.
func ProblemCodes(s *openapi3.SchemaRef) []string { return appendCodes(nil, s) }

func appendCodes(codes []string, s *openapi3.SchemaRef) []string {
	if s == nil || s.Value == nil {
		return codes
	}
	for _, part := range s.Value.AllOf {
		if part.Ref != "" || part.Value == nil {
			continue
		}
		for _, name := range []string{"code", "error"} {
			p := part.Value.Properties[name]
			if p == nil || p.Value == nil {
				continue
			}
			for _, v := range p.Value.Enum {
				if c := fmt.Sprint(v); !slices.Contains(codes, c) {
					codes = append(codes, c)
				}
			}
		}
	}
	return codes
}

// schemaFields lists an object schema's properties alphabetically (the
// loader keeps no document order).
func schemaFields(s *openapi3.Schema) []docsField {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]docsField, 0, len(names))
	for _, name := range names {
		p := s.Properties[name]
		f := docsField{Name: name, Required: slices.Contains(s.Required, name), Type: schemaType(p)}
		if p.Value != nil && p.Ref == "" {
			// A named schema describes itself where it is linked to.
			f.Description = markdown(p.Value.Description)
		}
		out = append(out, f)
	}
	return out
}

// schemaType renders a schema's type in one line: a link for a named
// schema, the element type of an array, formats and constraints.
func schemaType(s *openapi3.SchemaRef) template.HTML {
	return template.HTML(typeText(s, 0)) // built from escaped parts only
}

func typeText(s *openapi3.SchemaRef, depth int) string {
	if s == nil {
		return "any"
	}
	if s.Ref != "" {
		name := s.Ref[strings.LastIndex(s.Ref, "/")+1:]
		return `<a href="#schema-` + html.EscapeString(name) + `">` + html.EscapeString(name) + `</a>`
	}
	v := s.Value
	if v == nil || depth > 6 {
		return "any"
	}
	var parts []string
	switch {
	case len(v.AllOf) > 0:
		var named []string
		for _, p := range v.AllOf {
			if p.Ref != "" {
				named = append(named, typeText(p, depth+1))
			}
		}
		if len(named) > 0 {
			parts = append(parts, strings.Join(named, " and "))
		} else {
			parts = append(parts, "object")
		}
	case len(v.OneOf) > 0:
		var alts []string
		for _, p := range v.OneOf {
			alts = append(alts, typeText(p, depth+1))
		}
		parts = append(parts, "one of "+strings.Join(alts, " | "))
	case len(v.AnyOf) > 0:
		var alts []string
		for _, p := range v.AnyOf {
			alts = append(alts, typeText(p, depth+1))
		}
		parts = append(parts, "any of "+strings.Join(alts, " | "))
	case v.Type.Is("array"):
		parts = append(parts, "array of "+typeText(v.Items, depth+1))
	case v.Type.Is("object") && v.AdditionalProperties.Schema != nil && len(v.Properties) == 0:
		parts = append(parts, "map of string → "+typeText(v.AdditionalProperties.Schema, depth+1))
	case v.Type != nil && len(*v.Type) > 0:
		t := html.EscapeString(strings.Join(v.Type.Slice(), " | "))
		if v.Format != "" {
			t += " (" + html.EscapeString(v.Format) + ")"
		}
		parts = append(parts, t)
	default:
		parts = append(parts, "any")
	}
	parts = append(parts, constraints(v)...)
	if v.Nullable {
		parts = append(parts, "nullable")
	}
	return strings.Join(parts, ", ")
}

func constraints(v *openapi3.Schema) []string {
	var out []string
	if len(v.Enum) > 0 {
		vals := make([]string, len(v.Enum))
		for i, e := range v.Enum {
			vals[i] = fmt.Sprint(e)
		}
		out = append(out, "one of "+codeList(vals))
	}
	if v.Pattern != "" {
		out = append(out, "pattern <code>"+html.EscapeString(v.Pattern)+"</code>")
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	switch {
	case v.Min != nil && v.Max != nil:
		out = append(out, num(*v.Min)+" to "+num(*v.Max))
	case v.Min != nil:
		out = append(out, "at least "+num(*v.Min))
	case v.Max != nil:
		out = append(out, "at most "+num(*v.Max))
	}
	switch {
	case v.MinLength > 0 && v.MaxLength != nil:
		out = append(out, fmt.Sprintf("%d to %d characters", v.MinLength, *v.MaxLength))
	case v.MaxLength != nil:
		out = append(out, fmt.Sprintf("at most %d characters", *v.MaxLength))
	case v.MinLength > 0:
		out = append(out, fmt.Sprintf("at least %d characters", v.MinLength))
	}
	switch {
	case v.MinItems > 0 && v.MaxItems != nil:
		out = append(out, fmt.Sprintf("%d to %d items", v.MinItems, *v.MaxItems))
	case v.MaxItems != nil:
		out = append(out, fmt.Sprintf("at most %d items", *v.MaxItems))
	case v.MinItems > 0:
		out = append(out, fmt.Sprintf("at least %d items", v.MinItems))
	}
	if v.UniqueItems {
		out = append(out, "unique")
	}
	if v.Default != nil {
		out = append(out, "default <code>"+html.EscapeString(fmt.Sprint(v.Default))+"</code>")
	}
	return out
}

func codeList(vals []string) string {
	esc := make([]string, len(vals))
	for i, v := range vals {
		esc[i] = "<code>" + html.EscapeString(v) + "</code>"
	}
	return strings.Join(esc, " ")
}

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

func slug(s string) string {
	return strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

var (
	mdCode   = regexp.MustCompile("`([^`]+)`")
	mdStrong = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	mdEm     = regexp.MustCompile(`\*([^*\s][^*]*)\*`)
	mdBreak  = regexp.MustCompile(`\n\s*\n`)
)

// markdown renders the small subset of CommonMark the document uses:
// paragraphs, `code`, **strong** and *emphasis*. The text is escaped
// first, so only these tags can appear.
func markdown(text string) template.HTML {
	text = strings.TrimSpace(text)
	if text == "" {
		return ""
	}
	var b strings.Builder
	for _, para := range mdBreak.Split(text, -1) {
		para = html.EscapeString(strings.Join(strings.Fields(para), " "))
		// Code spans first, and kept apart, so that * inside them stays literal.
		var spans []string
		para = mdCode.ReplaceAllStringFunc(para, func(m string) string {
			spans = append(spans, "<code>"+m[1:len(m)-1]+"</code>")
			return "\x00" + strconv.Itoa(len(spans)-1) + "\x00"
		})
		para = mdStrong.ReplaceAllString(para, "<strong>$1</strong>")
		para = mdEm.ReplaceAllString(para, "<em>$1</em>")
		for i, span := range spans {
			para = strings.Replace(para, "\x00"+strconv.Itoa(i)+"\x00", span, 1)
		}
		b.WriteString("<p>" + para + "</p>")
	}
	return template.HTML(b.String()) // escaped above; only fixed tags added
}
