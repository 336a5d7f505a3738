package firmbridge_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
)

func TestConsent_EffectiveStatus(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := firmbridge.Consent{Status: firmbridge.ConsentActive, ValidFrom: from, ExpiresAt: from.Add(48 * time.Hour),
		Scopes: []string{"tax"}, Purpose: firmbridge.PurposeCreditAssessment}
	cases := []struct {
		name   string
		status string
		at     time.Time
		want   string
	}{
		{"before valid_from", firmbridge.ConsentActive, from.Add(-time.Second), firmbridge.ConsentPending},
		{"at valid_from", firmbridge.ConsentActive, from, firmbridge.ConsentActive},
		{"last second", firmbridge.ConsentActive, from.Add(48*time.Hour - time.Second), firmbridge.ConsentActive},
		{"at expiry", firmbridge.ConsentActive, from.Add(48 * time.Hour), firmbridge.ConsentExpired},
		{"revoked stays revoked", firmbridge.ConsentRevoked, from.Add(time.Hour), firmbridge.ConsentRevoked},
		{"rejected", firmbridge.ConsentRejected, from.Add(time.Hour), firmbridge.ConsentRejected},
		{"request awaiting an answer", firmbridge.ConsentPending, from.Add(time.Hour), firmbridge.ConsentPending},
		{"request lapsed unanswered", firmbridge.ConsentPending, from.Add(48 * time.Hour), firmbridge.ConsentExpired},
		{"stored expired", firmbridge.ConsentExpired, from.Add(time.Hour), firmbridge.ConsentExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			c.Status = tc.status
			if got := c.EffectiveStatus(tc.at); got != tc.want {
				t.Errorf("EffectiveStatus = %s, want %s", got, tc.want)
			}
		})
	}
	at := from.Add(time.Hour)
	if !c.Covers("tax", firmbridge.PurposeCreditAssessment, at) {
		t.Error("active tax consent does not cover tax for its purpose")
	}
	if c.Covers("patent", firmbridge.PurposeCreditAssessment, at) {
		t.Error("tax consent covers patent")
	}
	if c.Covers("tax", firmbridge.PurposeLoanMonitoring, at) {
		t.Error("credit_assessment consent covers loan_monitoring")
	}
}

func TestConsent_Validate(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	valid := func() firmbridge.Consent {
		return firmbridge.Consent{USCC: "91350100M000100Y43", Grantee: "BANK-1", Scopes: []string{"tax", "patent"},
			Purpose: firmbridge.PurposeCreditAssessment, ValidFrom: from, ExpiresAt: from.AddDate(0, 0, 90)}
	}
	dataFrom := func(y int) *time.Time { d := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC); return &d }
	cases := map[string]struct {
		change func(*firmbridge.Consent)
		field  string
		code   string
	}{
		"valid":                {func(*firmbridge.Consent) {}, "", ""},
		"no uscc":              {func(c *firmbridge.Consent) { c.USCC = "" }, "uscc", "invalid_uscc"},
		"no grantee":           {func(c *firmbridge.Consent) { c.Grantee = "" }, "grantee", "invalid_grantee"},
		"grantee with a space": {func(c *firmbridge.Consent) { c.Grantee = "BANK 1" }, "grantee", "invalid_grantee"},
		"no scopes":            {func(c *firmbridge.Consent) { c.Scopes = nil }, "scopes", "invalid_scope"},
		"unknown scope":        {func(c *firmbridge.Consent) { c.Scopes = []string{"payroll"} }, "scopes", "invalid_scope"},
		"scope twice":          {func(c *firmbridge.Consent) { c.Scopes = []string{"tax", "tax"} }, "scopes", "invalid_scope"},
		"no purpose":           {func(c *firmbridge.Consent) { c.Purpose = "" }, "purpose", "invalid_purpose"},
		"unknown purpose":      {func(c *firmbridge.Consent) { c.Purpose = "marketing" }, "purpose", "invalid_purpose"},
		"no expiry":            {func(c *firmbridge.Consent) { c.ExpiresAt = time.Time{} }, "expires_at", "invalid_expiry"},
		"expiry before":        {func(c *firmbridge.Consent) { c.ExpiresAt = from }, "expires_at", "invalid_expiry"},
		"longer than 90d":      {func(c *firmbridge.Consent) { c.ExpiresAt = from.AddDate(0, 0, 91) }, "expires_at", "consent_too_long"},
		"data before 1970":     {func(c *firmbridge.Consent) { c.DataFrom = dataFrom(1969) }, "data_from", "invalid_data_from"},
		"data after expiry":    {func(c *firmbridge.Consent) { c.DataFrom = dataFrom(2027) }, "data_from", "invalid_data_from"},
		"data from 2020":       {func(c *firmbridge.Consent) { c.DataFrom = dataFrom(2020) }, "", ""},
		"note of 500":          {func(c *firmbridge.Consent) { c.Note = strings.Repeat("贷", 500) }, "", ""},
		"note of 501":          {func(c *firmbridge.Consent) { c.Note = strings.Repeat("贷", 501) }, "note", "invalid_note"},
		"reason of 501":        {func(c *firmbridge.Consent) { c.Reason = strings.Repeat("x", 501) }, "reason", "invalid_reason"},
		"monitoring 1 year": {func(c *firmbridge.Consent) {
			c.Purpose = firmbridge.PurposeLoanMonitoring
			c.ExpiresAt = from.AddDate(1, 0, 0)
		}, "", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			e, ok := err.(*firmbridge.Error)
			if !ok || e.Field != tc.field || e.Kind != firmbridge.EINVALID || e.Code != tc.code {
				t.Errorf("Validate() = %#v, want EINVALID %s on field %s", err, tc.code, tc.field)
			}
		})
	}
}

func TestSchemaVersion_UnmarshalJSON(t *testing.T) {
	for in, want := range map[string]firmbridge.SchemaVersion{`1`: 1, `"1"`: 1, `"v2"`: 2, `" V3 "`: 3} {
		var v firmbridge.SchemaVersion
		if err := json.Unmarshal([]byte(in), &v); err != nil || v != want {
			t.Errorf("unmarshal %s = %d, %v; want %d", in, v, err, want)
		}
	}
	for _, in := range []string{`"one"`, `-1`, `1.5`, `70000`, `null`} {
		var v firmbridge.SchemaVersion
		if err := json.Unmarshal([]byte(in), &v); err == nil && in != `null` {
			t.Errorf("unmarshal %s accepted as %d", in, v)
		}
	}
}

func TestVersionOf_OrdersByObservedAt(t *testing.T) {
	t0 := time.Date(2024, 4, 16, 8, 0, 0, 0, time.UTC)
	if !(firmbridge.VersionOf(t0) < firmbridge.VersionOf(t0.Add(time.Microsecond))) {
		t.Error("a later observation does not get a higher version")
	}
	if firmbridge.VersionOf(t0) != firmbridge.VersionOf(t0.In(time.FixedZone("CST", 8*3600))) {
		t.Error("version depends on the time zone")
	}
}

func TestSourceDomain(t *testing.T) {
	for src, want := range map[string]string{"tax.vat_return": "tax", "patent.legal_event": "patent", "ops.water": "operations", "hr.payroll": "", "": ""} {
		if got := firmbridge.SourceDomain(src); got != want {
			t.Errorf("SourceDomain(%q) = %q, want %q", src, got, want)
		}
	}
}

func TestConsent_TooLongSaysDays(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := firmbridge.Consent{USCC: "91350100M000100Y43", Grantee: "BANK-1", Scopes: []string{"tax"},
		Purpose: firmbridge.PurposeRiskReview, ValidFrom: from, ExpiresAt: from.AddDate(1, 0, 0)}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "at most 180 days") {
		t.Errorf("Validate() = %v, want a message naming 180 days", err)
	}
}

func TestValidInstitution(t *testing.T) {
	for id, want := range map[string]bool{"BANK-DEMO-001": true, "bank_1.cn": true, "": false, "BANK 1": false,
		"银行": false, strings.Repeat("B", 64): true, strings.Repeat("B", 65): false} {
		if got := firmbridge.ValidInstitution(id); got != want {
			t.Errorf("ValidInstitution(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestConsent_Granted(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    firmbridge.Consent
		want bool
	}{
		{"granted by the firm", firmbridge.Consent{Status: firmbridge.ConsentActive}, true},
		{"revoked", firmbridge.Consent{Status: firmbridge.ConsentRevoked}, true},
		{"expired grant", firmbridge.Consent{Status: firmbridge.ConsentExpired}, true},
		{"approved request, expired", firmbridge.Consent{Status: firmbridge.ConsentExpired, RequestedBy: "u1"}, true},
		{"request pending", firmbridge.Consent{Status: firmbridge.ConsentPending, RequestedBy: "u1"}, false},
		{"request rejected", firmbridge.Consent{Status: firmbridge.ConsentRejected, RequestedBy: "u1"}, false},
		{"request lapsed", firmbridge.Consent{Status: firmbridge.ConsentExpired, RequestedBy: "u1", Reason: firmbridge.ReasonRequestLapsed}, false},
	} {
		if got := tc.c.Granted(); got != tc.want {
			t.Errorf("%s: Granted() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
