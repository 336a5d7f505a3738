package patent

import (
	"fmt"
	"slices"
	"testing"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
)

// arrayFields decodes a record {"<name>": array} the way a connector gets it.
func arrayFields(name, array string) (connectors.Fields, bool) {
	f, err := connectors.DecodeRecord(firmbridge.Envelope{Payload: []byte(`{"` + name + `":` + array + `}`)})
	return f, err == nil
}

func rejectText(err error) string {
	if rj, ok := err.(*firmbridge.Reject); ok {
		return fmt.Sprintf("%s|%s|%s", rj.Code, rj.Field, rj.Message)
	}
	return fmt.Sprint(err)
}

var applicantSeeds = []string{
	`[{"name":"福州某某科技有限公司","uscc":"91350100M000100Y43"}]`,
	`[{"name": "A公司", "uscc": "91350100M000100Y43"}, {"name":"张伟","uscc":null}, {"name":"B(福州)公司","uscc":"91350100M000100Y43"}]`,
	`[ {"名称":"某公司","统一社会信用代码":"9135 0100 m000 100y43"} ]`,
	`[{"申请人名称":"Ｘ公司","uscc":""}]`, `[{"Name":"X","USCC":"91350100M000100Y44"}]`, `[{"name":"","uscc":"91350100M000100Y43"}]`,
	`[{"name":"x","name":"y"}]`, `[{}]`, `[]`, `[ ]`, `null`, `"a;b"`, `[null]`, `[1]`, `[[]]`, `[{"name":1}]`,
	`["某银行股份有限公司(91110000100000000X)", "张三"]`, `["某公司(91110000100000000Y)"]`, `[""]`,
	`[{"name":"\u5f20\u4f1f"}]`, `[{"name":"a\"b"}]`, "[{\"name\":\"\xff\"}]", "[\"\xfe\"]", `[{"name":"\ufeffX"}]`,
	"[{\"name\":\"\u200bX\"}]", `[{"name":"X","uscc":null,"extra":true}]`, `[{"name":"X"},]`, `[{"name":"X"}`, `[{"name" "X"}]`,
	`[{"name":"X"}] `, "\t[\n{\"name\" : \"X\" , \"uscc\" : null }\r]", `[{"name":nul}]`, `[{"name":"X"} {"name":"Y"}]`,
	`[{"name":"一二三"},{"name":"一二三"}]`, `[{"name":"A","uscc":"91350100M000100Y43"},{"name":"B","uscc":"91350100m000100y43"}]`,
}

func FuzzReadApplicants(f *testing.F) {
	for _, s := range applicantSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, array string) {
		fields, ok := arrayFields("applicants", array)
		if !ok {
			return
		}
		r1, r2 := connectors.NewReader(fields), connectors.NewReader(fields)
		got, want := readApplicants(r1, fields), readApplicantsRef(r2, fields)
		if !slices.Equal(got, want) || rejectText(r1.Err()) != rejectText(r2.Err()) {
			t.Fatalf("readApplicants(%s) = %q, %v; encoding/json path %q, %v", array, got, r1.Err(), want, r2.Err())
		}
	})
}

func FuzzReadIPC(f *testing.F) {
	for _, s := range []string{`["H01M 10/42","H01M 4/13"]`, `["h01m10/42 (2006.01)", "H01M0010420000"]`, `[]`, `[""]`, `[" "]`,
		`["H01M 10/42","H01M 10/42"]`, `["X"]`, `[null]`, `[1]`, `"H01M 10/42;G06F 17/30"`, `["\u004801M 10/42"]`,
		"[\"\xff\"]", `["Ｈ０１Ｍ １０/４２"]`, `["H01M 10/42",]`, `["H01M 10/42"`, ` [ "G06F 17/30" ] `, `[["H01M 10/42"]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, array string) {
		fields, ok := arrayFields("ipc", array)
		if !ok {
			return
		}
		r1, r2 := connectors.NewReader(fields), connectors.NewReader(fields)
		gi, gs := readIPC(r1, fields)
		wi, ws := readIPCRef(r2, fields)
		if !slices.Equal(gi, wi) || !slices.Equal(gs, ws) || (gi == nil) != (wi == nil) || (gs == nil) != (ws == nil) ||
			rejectText(r1.Err()) != rejectText(r2.Err()) {
			t.Fatalf("readIPC(%s) = %q %q, %v; encoding/json path %q %q, %v", array, gi, gs, r1.Err(), wi, ws, r2.Err())
		}
	})
}
