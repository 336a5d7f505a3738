package patent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/patent"
)

// A patent application as the patent office sends it, with its applicant
// and IPC classes.
func ExampleBibliographic() {
	env := firmbridge.Envelope{RecordID: "CNIPA-BIB-201710601862.3", Source: "patent.bibliographic", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2019, 3, 1, 0, 0, 0, 0, time.UTC),
		Payload: []byte(`{"application_no": "CN201710601862.3", "kind": "发明", "title": "一种电池管理方法",
 "applicants": [{"name": "福州某某科技有限公司", "uscc": "91350100M000100Y43"}],
 "ipc": ["H01M 10/42", "H02J 7/00"], "filing_date": "20170725", "publication_date": "20171201",
 "grant_date": "20190215", "status": "granted"}`)}
	rows, err := patent.Bibliographic{}.Normalize(context.Background(), env, time.Date(2019, 3, 1, 1, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := rows[0].(patent.PatentRow)
	fmt.Println(p.ApplicationNo, p.Kind, p.Status, p.GrantDate.Format("2006-01-02"))
	fmt.Println(p.IPC, p.IPCSubclasses)
	for _, r := range rows[1:] {
		fmt.Println(r.Table(), r.Values()[0])
	}
	// Output:
	// 201710601862.3 invention granted 2019-02-15
	// [H01M 10/42 H02J 7/00] [H01M H02J]
	// patent_applicants 91350100M000100Y43
	// firms 91350100M000100Y43
}

// A pledge of a patent to a bank, as a legal event CSV line.
func ExampleLegalEvent() {
	line := "201710601862.3,2024-08-01,PLEDGE,专利权质押合同登记的生效,福州某某科技有限公司(91350100M000100Y43),某某银行股份有限公司（911100001000000020）"
	payload, _ := json.Marshal(line)
	env := firmbridge.Envelope{RecordID: "CNIPA-LE-201710601862.3-PLEDGE-20240801", Source: "patent.legal_event", SchemaVersion: 1,
		USCC: "91350100M000100Y43", ObservedAt: time.Date(2024, 8, 8, 0, 0, 0, 0, time.UTC), Payload: payload,
		Header: "application_no,event_date,event_code,event_text,from_party,to_party"}
	rows, err := patent.LegalEvent{}.Normalize(context.Background(), env, time.Date(2024, 8, 8, 1, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	e := rows[0].(patent.LegalEventRow)
	fmt.Println(e.EventCode, e.ToParty.Name, e.ToParty.USCC)
	// Output: PLEDGE 某某银行股份有限公司 911100001000000020
}
