package synth

import (
	"math/rand/v2"
	"strings"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
	"github.com/firmbridge/firmbridge/connectors/patent"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

// badCheck returns s with its last character replaced by another one, so
// that its check character is wrong.
func badCheck(s, alphabet string) string {
	last := s[len(s)-1]
	i := (strings.IndexByte(alphabet, last) + 1) % len(alphabet)
	return s[:len(s)-1] + string(alphabet[i])
}

// corrupt makes d unacceptable in one of the ways its source can be, and
// returns the reject code it must get.
func (g *gen) corrupt(rng *rand.Rand, d *draft) string {
	type fault struct {
		code  string
		apply func()
	}
	badUSCC := func(field string) fault {
		return fault{firmbridge.RejectInvalidUSCC, func() { d.set(field, badCheck(d.firm, connectors.USCCAlphabet)) }}
	}
	mismatch := fault{firmbridge.RejectUSCCMismatch, func() { d.uscc = g.banks[0].USCC }}
	set := func(code, field string, v any) fault { return fault{code, func() { d.set(field, v) }} }
	future := connectors.MonthPeriod(g.end.Year(), g.end.Month()).Next().Next()
	badAppNo := fault{firmbridge.RejectInvalidPatentNo, func() {
		if a, ok := d.get("application_no").(string); ok {
			d.set("application_no", badCheck(a, "0123456789X"))
		}
	}}

	var faults []fault
	switch d.source {
	case tax.SourceVATReturn:
		faults = []fault{badUSCC("纳税人识别号"), mismatch,
			set(firmbridge.RejectInvalidAmount, "销售额", "12..5"),
			set(firmbridge.RejectInvalidEnum, "金额单位", "千克"),
			set(firmbridge.RejectInconsistentData, "应纳税额", d.get("销售额")),
			{firmbridge.RejectFuturePeriod, func() {
				d.set("所属期起", future.Start.Format("2006-01-02"))
				d.set("所属期止", future.End.Format("2006-01-02"))
			}},
			{firmbridge.RejectInvalidEncoding, func() { d.badB64 = true }},
		}
	case tax.SourceCITAnnual:
		faults = []fault{badUSCC("taxpayer_id"), mismatch,
			set(firmbridge.RejectInvalidAmount, "operating_revenue", "五千万"),
			set(firmbridge.RejectFuturePeriod, "tax_year", g.end.Year()+1)}
	case tax.SourceCreditRating:
		faults = []fault{badUSCC("uscc"), mismatch, set(firmbridge.RejectInvalidEnum, "rating", "E级")}
	case tax.SourceArrears:
		faults = []fault{badUSCC("uscc"), mismatch, set(firmbridge.RejectInvalidAmount, "amount_owed", "十二万")}
	case patent.SourceBibliographic:
		faults = []fault{badAppNo, mismatch}
	case patent.SourceLegalEvent:
		faults = []fault{badAppNo, set(firmbridge.RejectInvalidEnum, "event_code", "SEIZE")}
	case operations.SourceElectricity:
		faults = []fault{badUSCC("uscc"), mismatch,
			set(firmbridge.RejectInvalidAmount, "consumption", "1.2.3"),
			set(firmbridge.RejectInvalidEnum, "unit", "立方米"),
			set(firmbridge.RejectImplausible, "consumption", "-1,200.00"),
			set(firmbridge.RejectFuturePeriod, "month", future.Start.Format("2006-01"))}
	case operations.SourceWater:
		faults = []fault{badUSCC("uscc"), mismatch,
			set(firmbridge.RejectImplausible, "volume_m3", "-35"),
			set(firmbridge.RejectInvalidPeriod, "period", "2024-13")}
	case operations.SourceSocialInsurance:
		faults = []fault{badUSCC("uscc"), mismatch,
			set(firmbridge.RejectImplausible, "insured_headcount", -5),
			set(firmbridge.RejectInvalidPeriod, "period", "2024年第五季度")}
	case operations.SourceCustoms:
		faults = []fault{badUSCC("企业统一社会信用代码"), mismatch,
			set(firmbridge.RejectInvalidEnum, "币制", "XYZ"),
			set(firmbridge.RejectInvalidAmount, "金额", "1,23,4.00"),
			{firmbridge.RejectInvalidEncoding, func() { d.badB64 = true }}}
	default:
		return ""
	}
	f := faults[rng.IntN(len(faults))]
	f.apply()
	d.id += "-X"
	return f.code
}
