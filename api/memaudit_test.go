package api_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/firmbridge/firmbridge"
)

// memAudit is the audit log of the API tests: it keeps the access events a
// server records, in memory, or fails every write while fail is set.
type memAudit struct {
	mu     sync.Mutex
	fail   atomic.Bool
	events []*firmbridge.AccessEvent
}

func (a *memAudit) Record(_ context.Context, e *firmbridge.AccessEvent) error {
	if a.fail.Load() {
		return errors.New("audit log down (test)")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return nil
}

func (a *memAudit) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

// snapshot returns the events recorded so far.
func (a *memAudit) snapshot() []*firmbridge.AccessEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// since returns the events recorded after the first n.
func (a *memAudit) since(n int) []*firmbridge.AccessEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events[min(n, len(a.events)):])
}
