package connectors

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/firmbridge/firmbridge"
)

// splitDateRef is what ParseDate did before splitDate: the regular
// expressions, in order.
func splitDateRef(f string) (y, m, d string, ok bool) {
	for _, re := range []interface{ FindStringSubmatch(string) []string }{reDateSep, reDatePlain, reDateCN} {
		if mm := re.FindStringSubmatch(f); mm != nil {
			return mm[1], mm[2], mm[3], true
		}
	}
	return "", "", "", false
}

func FuzzSplitDate(f *testing.F) {
	for _, s := range []string{"2024-04-15", "2024-4-5", "2024/06/30", "2024.06.30", "2024.6.3日", "20230115", "2024年4月15日",
		"2024年04月5", "2024-04/15", "2024-123-1", "2024--1", "2024-1-", "2024-1-1日日", "2024年4月", "2024年4月15号",
		"１２３４-1-1", "2024-1-1 ", "202401151", "2024011", "0000-0-0", "9999年99月99日", "45397", "45397.5", "", "2024-",
		"2024-01-01\u200b", "2024-1-1T", "abcd-1-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		y, m, d, ok := splitDate(s)
		wy, wm, wd, wok := splitDateRef(s)
		if ok && (y != wy || m != wm || d != wd || !wok) {
			t.Fatalf("splitDate(%q) = %q %q %q; regexps %q %q %q %v", s, y, m, d, wy, wm, wd, wok)
		}
		if !ok && wok {
			t.Fatalf("splitDate(%q) misses a date the regexps read (%q %q %q)", s, wy, wm, wd)
		}
	})
}

// atoiCNRef is atoiCN without its shortcut for digits.
func atoiCNRef(s string) int {
	if n, ok := cnNumerals[s]; ok {
		return n
	}
	n, _ := strconv.Atoi(s)
	return n
}

func FuzzAtoiCN(f *testing.F) {
	for _, s := range []string{"0", "2024", "09", "十一", "十", "一", "", "-1", "+5", "999999999", "1000000000",
		"99999999999999999999", "１２", "1_0", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := atoiCN(s), atoiCNRef(s); got != want {
			t.Fatalf("atoiCN(%q) = %d, want %d", s, got, want)
		}
	})
}

// readCSVLineRef is readCSVLine as it was: strings.Split, the quoted-field
// split and encoding/csv.
func readCSVLineRef(s string) ([]string, error) {
	s = strings.TrimRight(s, "\r\n")
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty line")
	}
	if !strings.ContainsAny(s, "\"\r\n") {
		return strings.Split(s, ","), nil
	}
	if !strings.ContainsAny(s, "\r\n") {
		if rec, ok := appendQuotedCSV(nil, s); ok {
			return rec, nil
		}
	}
	return readCSVLine(s) // encoding/csv, as before
}

// decodeCSVLineRef is decodeCSVLine as it was.
func decodeCSVLineRef(text, header string) (Fields, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	if strings.TrimSpace(header) == "" {
		h, rest, ok := strings.Cut(strings.TrimLeft(text, "\r\n"), "\n")
		if !ok {
			return Fields{}, &firmbridge.Reject{Code: firmbridge.RejectMissingField, Field: "header",
				Message: "a CSV payload needs the file's header line in header"}
		}
		header, text = h, rest
	}
	h, err := csvHeader(header)
	if err != nil {
		return Fields{}, err
	}
	values, err := readCSVLineRef(text)
	if err != nil {
		return Fields{}, invalidPayload("payload is not one CSV line: " + err.Error())
	}
	if len(values) != len(h.names) {
		return Fields{}, invalidPayload(fmt.Sprintf("CSV line has %d fields, the header has %d", len(values), len(h.names)))
	}
	f := Fields{fields: make([]field, 0, len(h.names))}
	for i, v := range values {
		f.setKeyed(h.keys[i], h.names[i], v, nil, false)
	}
	return f, nil
}

func FuzzDecodeCSVLineRef(f *testing.F) {
	vat := "纳税人识别号,纳税人名称,所属期起,所属期止,申报日期,销售额,销项税额,进项税额,应纳税额,金额单位"
	f.Add(vat, `91350100M000100Y43,福州某某科技有限公司,2024-01-01,2024-03-31,2024-04-15,"1,234.56",160.49,88.20,72.29,万元`)
	f.Add("a,b,c", "1,2,3")
	f.Add("a,b,a", "1,2,3")
	f.Add("A,ａ,a ", "1,,")
	f.Add("a,b", `"x""y",z`)
	f.Add("a,b", `"x"y,z`)
	f.Add("a,b", "x,\"y\nz\"")
	f.Add("", "a,b\n1,2")
	f.Add("\ufeffa,b", "\ufeff1,2\r\n")
	f.Add("a", "")
	f.Add("a,b", ",")
	f.Add(strings.Repeat("c,", 40)+"c", strings.Repeat("1,", 40)+"1")
	f.Fuzz(func(t *testing.T, header, line string) {
		got, err := decodeCSVLine(line, header)
		want, wantErr := decodeCSVLineRef(line, header)
		if !reflect.DeepEqual(err, wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeCSVLine(%q, %q) = %+v, %v; reference %+v, %v", line, header, got, err, want, wantErr)
		}
	})
}
