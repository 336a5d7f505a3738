package firmbridge_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firmbridge/firmbridge"
)

func testEvent(i int) *firmbridge.AccessEvent {
	return &firmbridge.AccessEvent{
		EventID: fmt.Sprintf("ev-%05d", i), RequestID: fmt.Sprintf("req-%d", i),
		OccurredAt: time.Date(2025, 3, 1, 8, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Second),
		Subject:    "analyst@BANK-1", Role: "bank", Org: "BANK-1", USCC: "91350100M000100Y43", Scopes: []string{"tax", "patent"},
		Purpose: "credit_assessment", ConsentID: "c-1", Decision: firmbridge.DecisionAllow, Status: 200,
		ClientAddr: "10.0.0.1", Method: "GET", Path: "/v1/firms/91350100M000100Y43/profile",
	}
}

func TestCanonicalAccessEvent_Golden(t *testing.T) {
	e := testEvent(0)
	e.Reason = "quote\" back\\ nl\n tab\t bell\x07 <&> 中文"
	e.OccurredAt = time.Date(2025, 3, 1, 16, 0, 0, 5000, time.FixedZone("CST", 8*3600))
	got, err := firmbridge.CanonicalAccessEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"client_addr":"10.0.0.1","consent_id":"c-1","decision":"allow","event_id":"ev-00000","method":"GET",` +
		`"occurred_at":"2025-03-01T08:00:00.000005000Z","org":"BANK-1","path":"/v1/firms/91350100M000100Y43/profile",` +
		`"purpose":"credit_assessment","reason":"quote\" back\\ nl\n tab\t bell\u0007 <&> 中文","request_id":"req-0","role":"bank",` +
		`"scopes":["tax","patent"],"status":200,"subject":"analyst@BANK-1","uscc":"91350100M000100Y43","v":1}`
	if string(got) != want {
		t.Fatalf("canonical bytes\n got %s\nwant %s", got, want)
	}
	back, err := firmbridge.DecodeCanonicalAccessEvent(got)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := firmbridge.CanonicalAccessEvent(back)
	if !bytes.Equal(again, got) {
		t.Errorf("round trip changed the bytes:\n got %s\nwant %s", again, got)
	}
	if !back.OccurredAt.Equal(e.OccurredAt) || back.Reason != e.Reason {
		t.Errorf("round trip changed the event: %+v", back)
	}
}

func TestCanonicalAccessEvent_NilScopesAndNotCanonical(t *testing.T) {
	e := testEvent(1)
	e.Scopes = nil
	got, err := firmbridge.CanonicalAccessEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(`"scopes":[]`)) {
		t.Errorf("nil scopes encode as %s, want []", got)
	}
	for name, b := range map[string]string{
		"spaces":          strings.Replace(string(got), `"v":1`, `"v": 1`, 1),
		"html escaped":    strings.Replace(string(got), `"GET"`, `"\u0047ET"`, 1),
		"other version":   strings.Replace(string(got), `"v":1`, `"v":2`, 1),
		"unknown member":  strings.Replace(string(got), `"v":1`, `"v":1,"x":1`, 1),
		"local time zone": strings.Replace(string(got), `.123456789Z`, `.123456789+00:00`, 1),
	} {
		if _, err := firmbridge.DecodeCanonicalAccessEvent([]byte(b)); err == nil {
			t.Errorf("%s: %s decoded as canonical", name, b)
		}
	}
}

func TestDecodeAuditMessage_Rejects(t *testing.T) {
	for name, tc := range map[string]struct{ msg, code string }{
		"not json":       {`{"event_id":`, firmbridge.RejectInvalidEnvelope},
		"unknown field":  {`{"event_id":"e","occurred_at":"2025-01-01T00:00:00Z","decision":"allow","extra":1}`, firmbridge.RejectInvalidEnvelope},
		"trailing data":  {`{"event_id":"e","occurred_at":"2025-01-01T00:00:00Z","decision":"allow"} {}`, firmbridge.RejectInvalidEnvelope},
		"no id":          {`{"occurred_at":"2025-01-01T00:00:00Z","decision":"allow"}`, firmbridge.RejectMissingField},
		"no time":        {`{"event_id":"e","decision":"allow"}`, firmbridge.RejectMissingField},
		"before 1970":    {`{"event_id":"e","occurred_at":"1969-12-31T23:59:59Z","decision":"allow"}`, firmbridge.RejectInvalidDate},
		"bad decision":   {`{"event_id":"e","occurred_at":"2025-01-01T00:00:00Z","decision":"maybe"}`, firmbridge.RejectInvalidEnum},
		"status too big": {`{"event_id":"e","occurred_at":"2025-01-01T00:00:00Z","decision":"deny","status":70000}`, firmbridge.RejectImplausible},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := firmbridge.DecodeAuditMessage([]byte(tc.msg))
			var rej *firmbridge.Reject
			if !errors.As(err, &rej) || rej.Code != tc.code {
				t.Fatalf("got %v, want a reject %s", err, tc.code)
			}
		})
	}
	e, err := firmbridge.DecodeAuditMessage([]byte(`{"event_id":"e","occurred_at":"2025-01-01T08:00:00+08:00","decision":"deny","status":403}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.OccurredAt.Location() != time.UTC || e.OccurredAt.Hour() != 0 {
		t.Errorf("occurred_at %v, want 00:00 UTC", e.OccurredAt)
	}
}

// testChain is a sealed chain with digests, as the sealer would write it.
type testChain struct {
	events  []firmbridge.SealedEvent
	digests []firmbridge.AuditDigest
	keys    firmbridge.AuditKeys
	priv    ed25519.PrivateKey
}

// mustChain seals n events on chain 3, with a digest after every
// digestEvery events, an empty (heartbeat) digest after the first one, and
// a final digest.
func mustChain(t *testing.T, n, digestEvery int) *testChain {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &testChain{keys: firmbridge.AuditKeys{"k1": pub}, priv: priv}
	state := firmbridge.NewChainState(3)
	signed := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	digest := func() {
		var prev *firmbridge.AuditDigest
		if len(c.digests) > 0 {
			prev = &c.digests[len(c.digests)-1]
		}
		d := firmbridge.NextAuditDigest(prev, state, signed.Add(time.Duration(len(c.digests))*10*time.Second))
		d.Sign(priv, "k1")
		c.digests = append(c.digests, d)
	}
	for i := 1; i <= n; i++ {
		ev, err := state.Seal(testEvent(i), int64(100+i))
		if err != nil {
			t.Fatal(err)
		}
		c.events = append(c.events, ev)
		if i%digestEvery == 0 {
			digest()
			if len(c.digests) == 1 {
				digest() // nothing new: an empty digest
			}
		}
	}
	if n%digestEvery != 0 {
		digest()
	}
	return c
}

func (c *testChain) verify(events []firmbridge.SealedEvent, digests []firmbridge.AuditDigest) firmbridge.ChainReport {
	return firmbridge.VerifyChain(firmbridge.ChainInput{Chain: 3, Events: slices.Values(events), Digests: slices.Values(digests), Keys: c.keys})
}

func (c *testChain) cloneEvents() []firmbridge.SealedEvent {
	out := make([]firmbridge.SealedEvent, len(c.events))
	for i, ev := range c.events {
		ev.Canonical = slices.Clone(ev.Canonical)
		e := *ev.Event
		ev.Event = &e
		out[i] = ev
	}
	return out
}

func TestVerifyChain_Intact(t *testing.T) {
	c := mustChain(t, 100, 10)
	r := c.verify(c.events, c.digests)
	if !r.OK() {
		t.Fatalf("intact chain failed: %v", r.Failure)
	}
	if r.Events != 100 || r.FirstSeq != 1 || r.LastSeq != 100 || r.SignedUpTo != 100 || r.Unsigned != 0 || r.Digests != len(c.digests) {
		t.Errorf("report %+v, want 100 events 1..100 all signed, %d digests", r, len(c.digests))
	}

	t.Run("from an anchor digest", func(t *testing.T) {
		anchor := c.digests[4] // covers up to 40
		if anchor.LastSeq != 40 {
			t.Fatalf("digest 5 ends at %d", anchor.LastSeq)
		}
		r := firmbridge.VerifyChain(firmbridge.ChainInput{Chain: 3, Anchor: &anchor, Events: slices.Values(c.events[40:]),
			Digests: slices.Values(c.digests[5:]), Keys: c.keys})
		if !r.OK() || r.FirstSeq != 41 || r.Events != 60 || r.Anchor != anchor.Number {
			t.Fatalf("report %+v failure %v, want 60 events from 41", r, r.Failure)
		}
	})
	t.Run("unsigned tail is reported and can be required away", func(t *testing.T) {
		r := c.verify(c.events, c.digests[:len(c.digests)-1]) // without the digest of 91..100
		if !r.OK() || r.Unsigned != 10 || r.SignedUpTo != 90 {
			t.Fatalf("report %+v failure %v, want OK with 10 unsigned after 90", r, r.Failure)
		}
		r.RequireSigned()
		wantFailure(t, r, 91, firmbridge.TamperUnsigned)
	})
	t.Run("empty chain with a heartbeat digest", func(t *testing.T) {
		d := firmbridge.NextAuditDigest(nil, firmbridge.NewChainState(3), time.Now())
		d.Sign(c.priv, "k1")
		r := c.verify(nil, []firmbridge.AuditDigest{d})
		if !r.OK() || r.Events != 0 || r.Digests != 1 {
			t.Fatalf("report %+v failure %v", r, r.Failure)
		}
	})
}

func wantFailure(t *testing.T, r firmbridge.ChainReport, seq uint64, kind string) {
	t.Helper()
	if r.Failure == nil {
		t.Fatalf("verified OK (%+v), want %s at seq %d", r, kind, seq)
	}
	if r.Failure.Seq != seq || r.Failure.Kind != kind {
		t.Fatalf("got %s at seq %d (%s), want %s at seq %d", r.Failure.Kind, r.Failure.Seq, r.Failure.Message, kind, seq)
	}
}

func TestVerifyChain_Tampering(t *testing.T) {
	c := mustChain(t, 100, 10)
	rechain := func(events []firmbridge.SealedEvent, from int) {
		prev := events[from-1].Hash
		for i := from; i < len(events); i++ {
			events[i].Hash = firmbridge.NextChainHash(prev, events[i].Canonical)
			prev = events[i].Hash
		}
	}
	cases := []struct {
		name   string
		tamper func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest)
		seq    uint64
		kind   string
	}{
		{"canonical bytes altered", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[41].Canonical = bytes.Replace(ev[41].Canonical, []byte(`"allow"`), []byte(`"deny"`), 1)
			return ev, d
		}, 42, firmbridge.TamperAltered},
		{"stored column altered", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[56].Event.Reason = "consent_required"
			return ev, d
		}, 57, firmbridge.TamperAltered},
		{"stored hash altered", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[9].Hash[0] ^= 1
			return ev, d
		}, 10, firmbridge.TamperAltered},
		{"altered and every later hash recomputed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[44].Canonical = bytes.Replace(ev[44].Canonical, []byte(`"BANK-1"`), []byte(`"BANK-2"`), 1)
			ev[44].Event.Org = "BANK-2"
			rechain(ev, 44)
			return ev, d
		}, 41, firmbridge.TamperDigestHash}, // digest 6 covers 41..50
		{"event removed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			return slices.Delete(ev, 29, 30), d
		}, 30, firmbridge.TamperRemoved},
		{"last events removed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			return ev[:95], d
		}, 96, firmbridge.TamperRemoved},
		{"first event removed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			return ev[1:], d
		}, 1, firmbridge.TamperRemoved},
		{"duplicate sequence number inserted", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			forged := ev[60]
			forged.Canonical = bytes.Replace(forged.Canonical, []byte(`"allow"`), []byte(`"deny"`), 1)
			return slices.Insert(ev, 60, forged), d
		}, 61, firmbridge.TamperInserted},
		{"extra event after the end", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			extra := ev[99]
			extra.Seq = 105
			return append(ev, extra), d
		}, 105, firmbridge.TamperInserted},
		{"sequence number zero", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			extra := ev[0]
			extra.Seq = 0
			return slices.Insert(ev, 0, extra), d
		}, 0, firmbridge.TamperInserted},
		{"two events swapped with their hashes", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[70].Seq, ev[71].Seq = ev[71].Seq, ev[70].Seq
			ev[70], ev[71] = ev[71], ev[70]
			return ev, d
		}, 71, firmbridge.TamperReordered},
		{"two events' contents swapped", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev[20].Canonical, ev[24].Canonical = ev[24].Canonical, ev[20].Canonical
			ev[20].Event, ev[24].Event = ev[24].Event, ev[20].Event
			return ev, d
		}, 21, firmbridge.TamperReordered},
		{"events out of order", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			moved := ev[10]
			ev = slices.Delete(ev, 10, 11)
			return slices.Insert(ev, 12, moved), d
		}, 11, firmbridge.TamperReordered},
		{"digest signature broken", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			d[3].Signature = slices.Clone(d[3].Signature)
			d[3].Signature[5] ^= 1
			return ev, d
		}, 21, firmbridge.TamperDigestSignature}, // digests: 1..10, empty, 11..20, 21..30
		{"digest last hash changed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			d[3].LastHash[0] ^= 1
			return ev, d
		}, 21, firmbridge.TamperDigestSignature},
		{"digest signed by an unknown key", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			d[5].Sign(other, "k2")
			return ev, d
		}, 41, firmbridge.TamperDigestSignature},
		{"digest removed", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			return ev, slices.Delete(d, 4, 5) // digest 5 covers 31..40
		}, 41, firmbridge.TamperDigestChain},
		{"events and digests rewritten without the key", func(ev []firmbridge.SealedEvent, d []firmbridge.AuditDigest) ([]firmbridge.SealedEvent, []firmbridge.AuditDigest) {
			ev = slices.Delete(ev, 49, 50)
			for i := 49; i < len(ev); i++ {
				ev[i].Seq--
			}
			rechain(ev, 49)
			return ev, d
		}, 41, firmbridge.TamperDigestHash},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, d := tc.tamper(c.cloneEvents(), slices.Clone(c.digests))
			wantFailure(t, c.verify(ev, d), tc.seq, tc.kind)
		})
	}
}

func TestAuditExport_RoundTrip(t *testing.T) {
	c := mustChain(t, 30, 10)
	var buf bytes.Buffer
	x := firmbridge.NewAuditExportWriter(&buf)
	anchor := c.digests[1] // the empty digest after 10
	if err := x.Digest(&anchor, true); err != nil {
		t.Fatal(err)
	}
	for i := range c.digests[2:] {
		if err := x.Digest(&c.digests[2+i], false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.events[10:] {
		if err := x.Event(&c.events[10+i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	read := func(b []byte) firmbridge.ChainReport {
		t.Helper()
		exp, err := firmbridge.ReadAuditExport(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(exp.Chains, []uint32{3}) {
			t.Fatalf("chains %v, want [3]", exp.Chains)
		}
		return firmbridge.VerifyChain(exp.Input(3, c.keys))
	}
	if r := read(buf.Bytes()); !r.OK() || r.Events != 20 || r.FirstSeq != 11 {
		t.Fatalf("export: %+v %v, want 20 events from 11 verified", r, r.Failure)
	}
	tampered := bytes.Replace(buf.Bytes(), []byte(`\"ev-00015\"`), []byte(`\"ev-00099\"`), 1)
	if bytes.Equal(tampered, buf.Bytes()) {
		t.Fatal("test export does not hold ev-00015")
	}
	wantFailure(t, read(tampered), 15, firmbridge.TamperAltered)
}
