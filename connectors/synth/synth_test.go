package synth_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/all"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

var end = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)

func TestGenerate_ValidRecordsNormalize(t *testing.T) {
	reg := mustRegistry(t)
	firms := synth.Firms(7, 40)
	recs := synth.Generate(7, firms, 24, end, synth.Options{})
	bySource := map[string]int{}
	for _, r := range recs {
		rows, err := reg.Normalize(context.Background(), r.Envelope, end)
		if err != nil {
			t.Errorf("%s %s: %v\npayload %s", r.Envelope.Source, r.Envelope.RecordID, err, r.Envelope.Payload)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("%s: no rows", r.Envelope.RecordID)
		}
		bySource[r.Envelope.Source]++
	}
	for _, s := range reg.Sources() {
		if bySource[s] == 0 {
			t.Errorf("no valid record of %s generated", s)
		}
	}
	t.Logf("%d records: %v", len(recs), bySource)
}

func TestGenerate_MalformedRecordsAreRejected(t *testing.T) {
	reg := mustRegistry(t)
	firms := synth.Firms(3, 30)
	recs := synth.Generate(3, firms, 24, end, synth.Options{Malformed: 0.3, Duplicates: 0.05})
	bad := 0
	for _, r := range recs {
		_, err := reg.Normalize(context.Background(), r.Envelope, end)
		var rej *firmbridge.Reject
		if r.WantReject == "" {
			if err != nil {
				t.Errorf("%s: unexpected %v", r.Envelope.RecordID, err)
			}
			continue
		}
		bad++
		if !errors.As(err, &rej) || rej.Code != r.WantReject {
			t.Errorf("%s %s: got %v, want reject %s\npayload %s", r.Envelope.Source, r.Envelope.RecordID, err, r.WantReject, r.Envelope.Payload)
		}
	}
	t.Logf("%d of %d malformed", bad, len(recs))
}

func TestFirms(t *testing.T) {
	firms := synth.Firms(1, 200)
	if len(firms) != 200 {
		t.Fatalf("got %d firms, want 200", len(firms))
	}
	cities, industries, usccs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, f := range firms {
		if !connectors.ValidUSCC(f.USCC) {
			t.Errorf("firm %s has an invalid USCC %s", f.Name, f.USCC)
		}
		if usccs[f.USCC] {
			t.Errorf("USCC %s given twice", f.USCC)
		}
		usccs[f.USCC] = true
		if !strings.HasPrefix(f.Name, f.City) || !strings.HasSuffix(f.Name, "有限公司") {
			t.Errorf("implausible name %q for a firm in %s", f.Name, f.City)
		}
		cities[f.City], industries[f.Industry] = true, true
	}
	if len(cities) < 5 || len(industries) < 5 {
		t.Errorf("got %d cities and %d industries, want at least 5 of each", len(cities), len(industries))
	}
	for _, b := range synth.Banks(1) {
		if !connectors.ValidUSCC(b.USCC) {
			t.Errorf("bank %s has an invalid USCC %s", b.Name, b.USCC)
		}
	}
}

// More firms than there are names: the generator does not loop, names
// and USCCs stay distinct, the firms after the names run out are branches,
// and the firms before are those a smaller n gives.
func TestFirms_BeyondTheNames(t *testing.T) {
	const n = 100_000 // the names are about 81,000
	firms := synth.Firms(1, n)
	if len(firms) != n {
		t.Fatalf("got %d firms, want %d", len(firms), n)
	}
	usccs, names := map[string]bool{}, map[string]bool{}
	branches := 0
	for _, f := range firms {
		if usccs[f.USCC] || names[f.Name] {
			t.Fatalf("firm %s %s repeats a USCC or a name", f.USCC, f.Name)
		}
		usccs[f.USCC], names[f.Name] = true, true
		if strings.HasSuffix(f.Name, "分公司") {
			branches++
		}
	}
	if branches < n-81_000 {
		t.Errorf("%d branches among %d firms, want at least %d", branches, n, n-81_000)
	}
	small := synth.Firms(1, 1000)
	for i := range small {
		if small[i] != firms[i] {
			t.Fatalf("firm %d of Firms(1, 1000) is %+v, of Firms(1, %d) %+v", i, small[i], n, firms[i])
		}
	}
}

func TestGenerate_Deterministic(t *testing.T) {
	firms := synth.Firms(9, 10)
	a := synth.Generate(9, firms, 12, end, synth.Options{Malformed: 0.1, Duplicates: 0.1})
	b := synth.Generate(9, synth.Firms(9, 10), 12, end, synth.Options{Malformed: 0.1, Duplicates: 0.1})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs with the same seed differ")
	}
	// Record ids are derived from natural keys: a longer span keeps the ids
	// of the months both spans cover.
	long := map[string]bool{}
	for _, e := range synth.Envelopes(9, firms, 18, end, synth.Options{}) {
		long[e.RecordID] = true
	}
	missing := 0
	for _, e := range synth.Envelopes(9, firms, 12, end, synth.Options{}) {
		if e.Source != "patent.bibliographic" && e.Source != "patent.legal_event" && e.Source != "tax.arrears" && !long[e.RecordID] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d record ids of a 12-month run are not in an 18-month run", missing)
	}
}

func TestGenerate_Quirks(t *testing.T) {
	recs := synth.Generate(2, synth.Firms(2, 30), 24, end, synth.Options{Duplicates: 0.1})
	var base64GB, quarterlyVAT, wanVAT, usd, eur, pledges, dups int
	for _, r := range recs {
		e := r.Envelope
		if e.ObservedAt.After(end) {
			t.Errorf("%s observed at %s, after end", e.RecordID, e.ObservedAt)
		}
		if e.PayloadEncoding == "base64" {
			base64GB++
		}
		txt, err := connectors.PayloadText(e)
		if err != nil {
			t.Fatalf("%s: %v", e.RecordID, err)
		}
		switch {
		case strings.HasSuffix(e.RecordID, "Q1") && e.Source == "tax.vat_return":
			quarterlyVAT++
		case strings.Contains(txt, ",USD") || strings.Contains(txt, ",502"):
			usd++
		case strings.Contains(txt, ",EUR") || strings.Contains(txt, ",300"):
			eur++
		case strings.Contains(txt, ",PLEDGE,"):
			pledges++
		}
		if strings.HasSuffix(txt, "万元") {
			wanVAT++
		}
		if r.Duplicate {
			dups++
		}
	}
	for name, n := range map[string]int{"base64 GB18030": base64GB, "quarterly VAT": quarterlyVAT, "万元 VAT": wanVAT,
		"USD customs": usd, "EUR customs": eur, "pledges": pledges, "duplicates": dups} {
		if n == 0 {
			t.Errorf("no %s in the generated data", name)
		}
	}
}

// Two different patents never share an application number, nor any record
// id: with tens of thousands of firms, random application numbers would
// clash unless the generator draws again.
func TestGenerate_UniqueAcrossFirms(t *testing.T) {
	n := 20_000
	if testing.Short() {
		n = 2_000
	}
	firms := synth.Firms(5, n)
	recs := synth.Generate(5, firms, 3, end, synth.Options{})
	idFirm := map[string]string{}  // source + record id -> firm
	appFirm := map[string]string{} // application number -> firm
	appSeen := func(r synth.Record, appNo string) {
		appNo = strings.TrimPrefix(strings.TrimSpace(appNo), "CN")
		if appNo == "" {
			t.Errorf("%s: no application number", r.Envelope.RecordID)
			return
		}
		if f, ok := appFirm[appNo]; ok && f != r.Envelope.USCC {
			t.Errorf("application number %s given to %s and %s", appNo, f, r.Envelope.USCC)
		}
		appFirm[appNo] = r.Envelope.USCC
	}
	patents := 0
	for _, r := range recs {
		e := r.Envelope
		key := e.Source + " " + e.RecordID
		if f, ok := idFirm[key]; ok && f != e.USCC {
			t.Errorf("%s record id %s used by %s and %s", e.Source, e.RecordID, f, e.USCC)
		}
		idFirm[key] = e.USCC
		switch e.Source {
		case "patent.bibliographic":
			var p struct {
				ApplicationNo string `json:"application_no"`
			}
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				t.Fatalf("%s: %v", e.RecordID, err)
			}
			appSeen(r, p.ApplicationNo)
			patents++
		case "patent.legal_event":
			txt, err := connectors.PayloadText(e)
			if err != nil {
				t.Fatalf("%s: %v", e.RecordID, err)
			}
			appNo, _, _ := strings.Cut(txt, ",")
			appSeen(r, appNo)
		}
	}
	if patents == 0 {
		t.Fatal("no patent generated")
	}
	t.Logf("%d firms, %d records, %d application numbers", n, len(recs), len(appFirm))
}

func BenchmarkRegistry_Normalize(b *testing.B) {
	reg := mustRegistry(b)
	envs := synth.Envelopes(1, synth.Firms(1, 20), 24, end, synth.Options{})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := reg.Normalize(context.Background(), envs[i%len(envs)], end); err != nil {
			b.Fatal(err)
		}
	}
}

func mustRegistry(t testing.TB) *connectors.Registry {
	t.Helper()
	r, err := all.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}
