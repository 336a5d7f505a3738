package patent

import (
	"strings"
	"unicode/utf8"

	"github.com/firmbridge/firmbridge/connectors"
)

// The applicants and IPC arrays of a bibliographic record arrive as raw
// JSON. Decoding them with encoding/json, and each applicant object once
// more as a record of its own, was half of that source's CPU. The scanners
// here read the arrays providers send (plain strings, objects of plain
// strings and nulls) in one pass over one copy of the text and report
// false for anything else (escapes, numbers, nesting, invalid UTF-8,
// malformed JSON), which goes to encoding/json as before.
// FuzzReadApplicants and FuzzReadIPC check both paths agree.

// applicantItem is one element of an applicants array: an object's fields
// or a string.
type applicantItem struct {
	obj    bool
	fields connectors.Fields
	text   string
}

// scanApplicants reads a JSON array of plain strings and of objects whose
// members are plain strings or null.
func scanApplicants(raw []byte) ([]applicantItem, bool) {
	s := string(raw) // the names kept in rows are substrings of this copy
	var out []applicantItem
	end, ok := scanArray(s, func(s string, i int) (int, bool) {
		switch s[i] {
		case '"':
			str, j, ok := plainString(s, i)
			if !ok {
				return 0, false
			}
			out = append(out, applicantItem{text: str})
			return j, true
		case '{':
			f, j, ok := plainObject(s, i)
			if !ok {
				return 0, false
			}
			out = append(out, applicantItem{obj: true, fields: f})
			return j, true
		}
		return 0, false
	})
	if !ok || end != len(s) {
		return nil, false
	}
	return out, true
}

// scanStrings reads a JSON array of plain strings.
func scanStrings(raw []byte) ([]string, bool) {
	s := string(raw)
	var out []string
	end, ok := scanArray(s, func(s string, i int) (int, bool) {
		str, j, ok := plainString(s, i)
		if ok {
			out = append(out, str)
		}
		return j, ok
	})
	if !ok || end != len(s) {
		return nil, false
	}
	return out, true
}

// scanArray reads the JSON array that starts s after white space, calling
// elem at each element's first byte; elem returns the offset after the
// element. It returns the offset after the array and trailing white space.
func scanArray(s string, elem func(s string, i int) (int, bool)) (int, bool) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '[' {
		return 0, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return skipSpace(s, i+1), true
	}
	for {
		if i >= len(s) {
			return 0, false
		}
		j, ok := elem(s, i)
		if !ok {
			return 0, false
		}
		i = skipSpace(s, j)
		if i >= len(s) {
			return 0, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case ']':
			return skipSpace(s, i+1), true
		default:
			return 0, false
		}
	}
}

// plainObject reads a JSON object at s[i] whose names are plain strings
// and whose values are plain strings or null (the empty string, as
// connectors.DecodeRecord reads null), returning its fields and the offset
// after it.
func plainObject(s string, i int) (connectors.Fields, int, bool) {
	// An applicant has two or three members: their names and values stay
	// on the stack until NewFields copies them.
	var nbuf, vbuf [4]string
	names, values := nbuf[:0], vbuf[:0]
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return connectors.NewFields(names, values), i + 1, true
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return connectors.Fields{}, 0, false
		}
		name, j, ok := plainString(s, i)
		if !ok {
			return connectors.Fields{}, 0, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return connectors.Fields{}, 0, false
		}
		i = skipSpace(s, i+1)
		var value string
		switch {
		case i >= len(s):
			return connectors.Fields{}, 0, false
		case s[i] == '"':
			if value, j, ok = plainString(s, i); !ok {
				return connectors.Fields{}, 0, false
			}
		case strings.HasPrefix(s[i:], "null"):
			j = i + len("null")
		default:
			return connectors.Fields{}, 0, false
		}
		names, values = append(names, name), append(values, value)
		i = skipSpace(s, j)
		if i >= len(s) {
			return connectors.Fields{}, 0, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return connectors.NewFields(names, values), i + 1, true
		default:
			return connectors.Fields{}, 0, false
		}
	}
}

// plainString reads a JSON string literal at s[i] without escapes or
// control bytes, of valid UTF-8, whose text is its bytes; it returns the
// text and the offset after the closing quote.
func plainString(s string, i int) (string, int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			body := s[i+1 : j]
			if !utf8.ValidString(body) {
				return "", 0, false
			}
			return body, j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// skipSpace skips JSON white space from s[i].
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
