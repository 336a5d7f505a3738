package patent_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/patent"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

const (
	firmUSCC = "91350100M000100Y43"
	bankUSCC = "911100001000000020" // valid; PROVIDERS.md's 91110000100000000X is not
	header   = "application_no,event_date,event_code,event_text,from_party,to_party"
)

var (
	observed = time.Date(2024, 9, 2, 10, 0, 0, 0, connectors.ChinaTime)
	ingested = observed.Add(time.Minute)
)

func TestParseApplicationNo(t *testing.T) {
	tests := []struct {
		in, want, kind string
		pct            bool
	}{
		{"201710601862.3", "201710601862.3", patent.KindInvention, false},
		{"CN201710601862.3", "201710601862.3", patent.KindInvention, false},
		{"cn 2017106018623", "201710601862.3", patent.KindInvention, false},
		{"ZL201710601862.3", "201710601862.3", patent.KindInvention, false},
		{"ＣＮ２０１７１０６０１８６２．３", "201710601862.3", patent.KindInvention, false},
	}
	for _, tt := range tests {
		a, err := patent.ParseApplicationNo(tt.in)
		if err != nil || a.String() != tt.want || a.Kind() != tt.kind || a.PCT() != tt.pct || a.Year != 2017 {
			t.Errorf("ParseApplicationNo(%q) = %s %s pct=%v year=%d, %v; want %s %s", tt.in, a, a.Kind(), a.PCT(), a.Year, err, tt.want, tt.kind)
		}
	}
	for _, bad := range []string{"201710601862.4", "201740601862.3", "20171060186.3", "", "CN2017106018X2.3"} {
		if a, err := patent.ParseApplicationNo(bad); err == nil {
			t.Errorf("ParseApplicationNo(%q) = %s, want an error", bad, a)
		}
	}
	for _, digits := range []string{"202310123456", "202320000001", "202480000123", "98123456"} {
		c, err := patent.ApplicationCheckChar(digits)
		if err != nil {
			t.Fatal(err)
		}
		sep := "."
		if _, err := patent.ParseApplicationNo(digits + sep + string(c)); err != nil {
			t.Errorf("number made with ApplicationCheckChar(%s) = %c does not parse: %v", digits, c, err)
		}
	}
}

func TestParseIPC(t *testing.T) {
	tests := []struct{ in, want, parts string }{
		{"H01M 10/42", "H01M 10/42", "H 01 M 10 42"},
		{"h01m10/42", "H01M 10/42", "H 01 M 10 42"},
		{"H02J 7/00 (2006.01)", "H02J 7/00", "H 02 J 7 00"},
		{"G06F 16/2458", "G06F 16/2458", "G 06 F 16 2458"},
		{"H01M0010420000", "H01M 10/42", "H 01 M 10 42"},
	}
	for _, tt := range tests {
		c, err := patent.ParseIPC(tt.in)
		parts := strings.Join([]string{c.Section, c.Class, c.Subclass, c.MainGroup, c.Subgroup}, " ")
		if err != nil || c.String() != tt.want || parts != tt.parts {
			t.Errorf("ParseIPC(%q) = %s (%s), %v; want %s (%s)", tt.in, c, parts, err, tt.want, tt.parts)
		}
	}
	for _, bad := range []string{"Z01M 10/42", "H01M 10", "H01 10/42", ""} {
		if c, err := patent.ParseIPC(bad); err == nil {
			t.Errorf("ParseIPC(%q) = %s, want an error", bad, c)
		}
	}
}

func TestParseParty(t *testing.T) {
	tests := []struct {
		in         string
		name, uscc string
		wantErr    bool
	}{
		{"某某银行股份有限公司(" + bankUSCC + ")", "某某银行股份有限公司", bankUSCC, false},
		{"某某银行股份有限公司（" + strings.ToLower(bankUSCC) + "）", "某某银行股份有限公司", bankUSCC, false},
		{"福州某某科技（福建）有限公司", "福州某某科技（福建）有限公司", "", false},
		{"福州某某科技(福建)有限公司(" + firmUSCC + ")", "福州某某科技（福建）有限公司", firmUSCC, false},
		{"张伟", "张伟", "", false},
		{"", "", "", false},
		{"某某银行股份有限公司(91110000100000000X)", "", "", true}, // PROVIDERS.md's sample: bad check character
	}
	for _, tt := range tests {
		p, err := patent.ParseParty(tt.in)
		if (err != nil) != tt.wantErr || p.Name != tt.name || p.USCC != tt.uscc {
			t.Errorf("ParseParty(%q) = %+v, %v; want {%s %s} error %v", tt.in, p, err, tt.name, tt.uscc, tt.wantErr)
		}
	}
}

func bib(payload string) firmbridge.Envelope {
	return firmbridge.Envelope{RecordID: "CNIPA-BIB-202310123456", Source: patent.SourceBibliographic, SchemaVersion: 1,
		USCC: firmUSCC, ObservedAt: observed, Payload: []byte(payload)}
}

func appNo(t testing.TB, digits string) string {
	t.Helper()
	c, err := patent.ApplicationCheckChar(digits)
	if err != nil {
		t.Fatal(err)
	}
	return digits + "." + string(c)
}

func TestBibliographic_Normalize(t *testing.T) {
	no := appNo(t, "202310123456")
	utility := appNo(t, "202420654321")
	tests := []struct {
		name    string
		payload string
		check   func(t *testing.T, rows []firmbridge.Row)
		code    string
		field   string
	}{
		{"pending invention with two applicants", `{"application_no": "CN` + no + `", "kind": "发明", "title": "一种电池管理方法",
 "applicants": [{"name": "福州某某科技有限公司", "uscc": "91350100m000100y43"}, {"name": "福州理工大学", "uscc": "` + bankUSCC + `"}, {"name": "张伟", "uscc": null}],
 "ipc": ["H01M 10/42", "H02J 7/00", "H01M 4/36"], "filing_date": "20230115", "publication_date": "20230714", "grant_date": null, "status": "pending"}`,
			func(t *testing.T, rows []firmbridge.Row) {
				p := rows[0].(patent.PatentRow)
				if p.ApplicationNo != no || p.Kind != patent.KindInvention || p.Status != "pending" || p.GrantDate != nil ||
					p.PublicationDate == nil || p.PublicationDate.Format("2006-01-02") != "2023-07-14" {
					t.Errorf("patent = %+v", p)
				}
				if got := strings.Join(p.IPC, ";") + " | " + strings.Join(p.IPCSubclasses, ";"); got != "H01M 10/42;H02J 7/00;H01M 4/36 | H01M;H02J" {
					t.Errorf("ipc = %s", got)
				}
				if got := strings.Join(p.ApplicantNames, ";") + " | " + strings.Join(p.ApplicantUSCCs, ";"); got != "福州某某科技有限公司;福州理工大学;张伟 | "+firmUSCC+";"+bankUSCC+";" {
					t.Errorf("applicants = %s", got)
				}
				var tables []string
				for _, r := range rows {
					tables = append(tables, r.Table())
				}
				if got := strings.Join(tables, ","); got != "patents,patent_applicants,firms,patent_applicants,firms" {
					t.Errorf("tables = %s, want a patent row and an applicant and firms row per applicant with a USCC", got)
				}
				if a := rows[3].(patent.ApplicantRow); a.USCC != bankUSCC || a.Position != 2 || a.ApplicationNo != no {
					t.Errorf("second applicant row = %+v", a)
				}
			}, "", ""},
		{"granted utility model, kind from the number", `{"application_no": "` + utility + `", "title": "一种散热装置",
 "applicants": ["福州某某科技有限公司(` + firmUSCC + `)"], "ipc": "H05K 7/20", "filing_date": "2024-02-01", "grant_date": "2024/08/20", "status": "授权"}`,
			func(t *testing.T, rows []firmbridge.Row) {
				p := rows[0].(patent.PatentRow)
				if p.Kind != patent.KindUtilityModel || p.Status != "granted" || p.GrantDate == nil || p.GrantDate.Format("2006-01-02") != "2024-08-20" {
					t.Errorf("patent = %+v", p)
				}
			}, "", ""},
		{"bad check character", `{"application_no": "202310123456.` + string("0123456789X"[(strings.IndexByte("0123456789X", no[len(no)-1])+1)%11]) + `", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "` + firmUSCC + `"}], "filing_date": "20230115"}`,
			nil, firmbridge.RejectInvalidPatentNo, "application_no"},
		{"kind contradicts number", `{"application_no": "` + no + `", "kind": "外观设计", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "` + firmUSCC + `"}], "filing_date": "20230115"}`,
			nil, firmbridge.RejectInconsistentData, "kind"},
		{"granted without grant date", `{"application_no": "` + no + `", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "` + firmUSCC + `"}], "filing_date": "20230115", "status": "granted"}`,
			nil, firmbridge.RejectMissingField, "grant_date"},
		{"grant before filing", `{"application_no": "` + no + `", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "` + firmUSCC + `"}], "filing_date": "20230115", "grant_date": "20221231", "status": "granted"}`,
			nil, firmbridge.RejectInconsistentData, "grant_date"},
		{"applicant with a bad USCC", `{"application_no": "` + no + `", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "91350100M000100Y44"}], "filing_date": "20230115"}`,
			nil, firmbridge.RejectInvalidUSCC, "applicants[0].uscc"},
		{"envelope firm is not an applicant", `{"application_no": "` + no + `", "title": "x", "applicants": [{"name": "福州理工大学", "uscc": "` + bankUSCC + `"}], "filing_date": "20230115"}`,
			nil, firmbridge.RejectUSCCMismatch, "uscc"},
		{"bad IPC", `{"application_no": "` + no + `", "title": "x", "applicants": [{"name": "福州某某科技有限公司", "uscc": "` + firmUSCC + `"}], "ipc": ["H01M 10/42", "电池"], "filing_date": "20230115"}`,
			nil, firmbridge.RejectInvalidPayload, "ipc[1]"},
		{"no applicants", `{"application_no": "` + no + `", "title": "x", "applicants": [], "filing_date": "20230115"}`,
			nil, firmbridge.RejectMissingField, "applicants"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := patent.Bibliographic{}.Normalize(context.Background(), bib(tt.payload), ingested)
			if tt.code != "" {
				var rej *firmbridge.Reject
				if !errors.As(err, &rej) || rej.Code != tt.code || rej.Field != tt.field {
					t.Fatalf("got %v, want reject %s on field %s", err, tt.code, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			tt.check(t, rows)
		})
	}
}

func legal(t testing.TB, line string) firmbridge.Envelope {
	t.Helper()
	p, _ := json.Marshal(line)
	return firmbridge.Envelope{RecordID: "CNIPA-LE-1", Source: patent.SourceLegalEvent, SchemaVersion: 1, USCC: firmUSCC,
		ObservedAt: observed, Payload: p, Header: header, Charset: "utf-8"}
}

func TestLegalEvent_Normalize(t *testing.T) {
	no := appNo(t, "202310123456")
	tests := []struct {
		name      string
		line      string
		want      string
		firms     int
		code, fld string
	}{
		{"pledge to a bank, full-width brackets", no + ",2024-08-01,PLEDGE,专利权质押合同登记的生效,福州某某科技有限公司（" + firmUSCC + "）,某某银行股份有限公司（" + bankUSCC + "）",
			"PLEDGE 2024-08-01 福州某某科技有限公司/" + firmUSCC + " -> 某某银行股份有限公司/" + bankUSCC, 2, "", ""},
		{"pledge release in Chinese", "CN" + no + ",2024-08-20,专利权质押合同登记的注销,,福州某某科技有限公司(" + firmUSCC + "),某某银行股份有限公司",
			"PLEDGE_RELEASE 2024-08-20 福州某某科技有限公司/" + firmUSCC + " -> 某某银行股份有限公司/", 1, "", ""},
		{"grant without parties", no + ",20240610,grant,授权,,", "GRANT 2024-06-10 / -> /", 0, "", ""},
		{"pledge without pledgee", no + ",2024-08-01,PLEDGE,,福州某某科技有限公司,", "", 0, firmbridge.RejectMissingField, "to_party"},
		{"party code with a bad check character", no + ",2024-08-01,PLEDGE,,福州某某科技有限公司,某某银行股份有限公司(91110000100000000X)", "", 0, firmbridge.RejectInvalidUSCC, "to_party"},
		{"unknown event", no + ",2024-08-01,SEIZE,,,", "", 0, firmbridge.RejectInvalidEnum, "event_code"},
		{"future event", no + ",2024-09-30,LAPSE,,,", "", 0, firmbridge.RejectFuturePeriod, "event_date"},
		{"firm is neither party", no + ",2024-08-01,TRANSFER,,福州理工大学(" + bankUSCC + "),某某银行股份有限公司(" + bankUSCC + ")", "", 0, firmbridge.RejectUSCCMismatch, "uscc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := patent.LegalEvent{}.Normalize(context.Background(), legal(t, tt.line), ingested)
			if tt.code != "" {
				var rej *firmbridge.Reject
				if !errors.As(err, &rej) || rej.Code != tt.code || rej.Field != tt.fld {
					t.Fatalf("got %v, want reject %s on field %s", err, tt.code, tt.fld)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			e := rows[0].(patent.LegalEventRow)
			got := e.EventCode + " " + e.EventDate.Format("2006-01-02") + " " + e.FromParty.Name + "/" + e.FromParty.USCC + " -> " + e.ToParty.Name + "/" + e.ToParty.USCC
			if got != tt.want || e.ApplicationNo != no || e.USCC != firmUSCC {
				t.Errorf("got  %s (%s, keyed %s)\nwant %s", got, e.ApplicationNo, e.USCC, tt.want)
			}
			if len(rows)-1 != tt.firms {
				t.Errorf("got %d firms rows, want %d", len(rows)-1, tt.firms)
			}
		})
	}
}

// A grant is re-sent as the same record with a newer observed_at: same
// record id and application number (the patents key), higher version.
func TestBibliographic_GrantResentReplacesPending(t *testing.T) {
	end := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	type seen struct {
		status  string
		version uint64
		id      string
	}
	byApp := map[string][]seen{}
	for _, env := range synth.Envelopes(5, synth.Firms(5, 40), 24, end, synth.Options{}) {
		if env.Source != patent.SourceBibliographic {
			continue
		}
		rows, err := patent.Bibliographic{}.Normalize(context.Background(), env, end)
		if err != nil {
			t.Fatalf("%s: %v", env.RecordID, err)
		}
		p := rows[0].(patent.PatentRow)
		byApp[p.ApplicationNo] = append(byApp[p.ApplicationNo], seen{p.Status, p.Lineage.Version, p.Lineage.RecordID})
	}
	resent := 0
	for app, vs := range byApp {
		if len(vs) < 2 {
			continue
		}
		resent++
		if vs[0].status != "pending" || vs[1].status != "granted" {
			t.Errorf("%s: statuses %v, want pending then granted", app, vs)
		}
		if vs[0].id != vs[1].id || vs[1].version <= vs[0].version {
			t.Errorf("%s: re-sent as %+v after %+v; want the same record id and a higher version", app, vs[1], vs[0])
		}
	}
	if resent == 0 {
		t.Fatal("the generated data has no re-sent grant")
	}
}
