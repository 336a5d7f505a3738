package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors/synth"
)

// benchCorpus is the benchmark's raw records, encoded once and kept in
// memory as the bytes a provider would publish.
type benchCorpus struct {
	msgs     []benchMsg
	bySource map[string]int
	byDomain map[string]int
	bytes    int64
	firms    int
}

// benchMsg is one encoded envelope, keyed by the firm's USCC as providers
// key them. key and value point into a chunk's shared buffer.
type benchMsg struct {
	key, value []byte
	domain     string
}

// benchFirmChunk is how many firms are generated at a time: synth keeps every
// draft of a call in memory, so a million records are made a few thousand at
// a time and only their encoded bytes are kept.
const benchFirmChunk = 250

// maxBenchFirms stays well inside the number of distinct firm names synth
// can make (about 80,000), where finding a fresh name gets slow.
const maxBenchFirms = 40000

// generateCorpus encodes n envelopes from synth: firms in chunks, every
// record of the chosen sources (all of them when sources is empty) that a
// firm produces over months months before end, in synth's order, until n
// records are collected. nFirms > 0 fixes the number of firms; 0 takes as
// many as needed.
func generateCorpus(seed int64, n, nFirms, months int, sources []string, end time.Time, bar *progressbar.ProgressBar) (*benchCorpus, error) {
	c := &benchCorpus{msgs: make([]benchMsg, 0, n), bySource: map[string]int{}, byDomain: map[string]int{}}
	limit := nFirms
	if limit <= 0 {
		limit = maxBenchFirms
	}
	var pool []synth.Firm
	for first := 0; len(c.msgs) < n; first += benchFirmChunk {
		if first >= limit {
			return nil, fmt.Errorf("bench: %d firms over %d months give only %d records of %d: raise --firms or --months", limit, months, len(c.msgs), n)
		}
		last := min(first+benchFirmChunk, limit)
		if last > len(pool) {
			// Firms is prefix-stable: a longer list starts with the shorter one.
			want := last
			if nFirms <= 0 {
				want = min(max(2*len(pool), last), limit)
			}
			pool = synth.Firms(seed, want)
		}
		envs := synth.Envelopes(seed, pool[first:last], months, end, synth.Options{})
		var (
			buf  []byte
			offs []int
			kept []firmbridge.Envelope
		)
		for _, env := range envs {
			if len(c.msgs)+len(kept) == n {
				break
			}
			if len(sources) > 0 && !slices.Contains(sources, env.Source) {
				continue
			}
			body, err := json.Marshal(env)
			if err != nil {
				return nil, fmt.Errorf("bench: encode envelope %s: %w", env.RecordID, err)
			}
			offs = append(offs, len(buf))
			buf = append(buf, env.USCC...)
			offs = append(offs, len(buf))
			buf = append(buf, body...)
			kept = append(kept, env)
		}
		offs = append(offs, len(buf))
		for i, env := range kept {
			domain := firmbridge.SourceDomain(env.Source)
			c.msgs = append(c.msgs, benchMsg{key: buf[offs[2*i]:offs[2*i+1]:offs[2*i+1]], value: buf[offs[2*i+1]:offs[2*i+2]:offs[2*i+2]], domain: domain})
			c.bySource[env.Source]++
			c.byDomain[domain]++
		}
		c.bytes += int64(len(buf))
		c.firms = last
		if bar != nil {
			_ = bar.Add(len(kept))
		}
	}
	return c, nil
}

// mix describes the corpus's sources, largest share first.
func (c *benchCorpus) mix() string {
	type share struct {
		source string
		n      int
	}
	var shares []share
	for s, n := range c.bySource {
		shares = append(shares, share{s, n})
	}
	slices.SortFunc(shares, func(a, b share) int {
		if a.n != b.n {
			return b.n - a.n
		}
		if a.source < b.source {
			return -1
		}
		return 1
	})
	out := ""
	for i, s := range shares {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %.1f%%", s.source, 100*float64(s.n)/float64(len(c.msgs)))
	}
	return out
}
