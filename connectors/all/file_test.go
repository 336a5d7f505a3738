package all_test

import (
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge/connectors"
)

// A natural key holding a USCC is the same key however the USCC is
// written, so a corrected re-send replaces the record; other key values
// keep their text.
func TestSplitFile_NaturalKeyUSCC(t *testing.T) {
	reg := mustRegistry(t)
	export := "uscc,month,account_no,consumption,unit,peak_kw,arrears\n" +
		"91350100M000100Y43,2024-04,A-1,1.25,万千瓦时,,\n" +
		"9135 0100 m000 100y43,2024-04,A-1,1.30,万千瓦时,,\n" +
		"９１３５０１００Ｍ０００１００Ｙ４３,2024-04,a-1,1.30,万千瓦时,,\n" +
		"91350100M000100Y44,2024-04,A-1,1.30,万千瓦时,,\n"
	file, err := reg.SplitFile(strings.NewReader(export), connectors.FileOptions{Source: "ops.electricity",
		ObservedAt: time.Date(2024, 5, 10, 9, 0, 0, 0, connectors.ChinaTime), RecordIDFields: []string{"uscc", "month", "account_no"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, rec := range file.Records {
		if rec.Err != nil {
			t.Fatalf("line %d: %v", rec.Line, rec.Err)
		}
		ids = append(ids, rec.Envelope.RecordID)
	}
	const want = "ops.electricity:91350100M000100Y43|2024-04|A-1"
	if ids[0] != want || ids[1] != want || ids[2] != want {
		t.Errorf("ids %q, want the first three %q", ids[:3], want)
	}
	// Not a valid USCC (wrong check character): kept as written.
	if ids[3] != "ops.electricity:91350100M000100Y44|2024-04|A-1" {
		t.Errorf("id %q of a value that is not a USCC", ids[3])
	}
}
