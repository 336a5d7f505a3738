package all_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
)

// A provider's CSV export split into envelopes, one per line, each
// normalized as ingest would.
func ExampleRegistry_SplitFile() {
	reg, _ := all.Registry()
	export := "account_no,uscc,month,consumption,unit,peak_kw,arrears\n" +
		"059100012345,91350100m000100y43,2024年3月,1.25,万千瓦时,,\n" +
		"059100012345,91350100M000100Y43,2024-04,-80,kWh,,\n"
	observed := time.Date(2024, 5, 10, 9, 0, 0, 0, connectors.ChinaTime)
	file, err := reg.SplitFile(strings.NewReader(export), connectors.FileOptions{
		Source: "ops.electricity", ObservedAt: observed, RecordIDFields: []string{"account_no", "month"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(file.Format, file.Charset)
	for _, rec := range file.Records {
		rows, err := reg.Normalize(context.Background(), rec.Envelope, observed)
		if err != nil {
			fmt.Printf("line %d %s: %v\n", rec.Line, rec.Envelope.RecordID, err)
			continue
		}
		fmt.Printf("line %d %s: %s %v\n", rec.Line, rec.Envelope.RecordID, rows[0].Table(), rows[0].Values()[3])
	}
	// Output:
	// csv utf-8
	// line 2 ops.electricity:059100012345|2024年3月: ops_electricity 12500
	// line 3 ops.electricity:059100012345|2024-04: implausible_value: consumption -80.00 is negative (field consumption)
}
