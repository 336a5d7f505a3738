// Package all builds the registry of every connector firmbridge ships.
package all

import (
	"fmt"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/connectors"
	"github.com/firmbridge/firmbridge/connectors/operations"
	"github.com/firmbridge/firmbridge/connectors/patent"
	"github.com/firmbridge/firmbridge/connectors/tax"
)

// Connectors returns every connector: tax, patent, operations.
func Connectors() []firmbridge.Connector {
	var cs []firmbridge.Connector
	cs = append(cs, tax.Connectors()...)
	cs = append(cs, patent.Connectors()...)
	cs = append(cs, operations.Connectors()...)
	return cs
}

// Registry returns the registry of every connector. The set is fixed at
// compile time; an error means two connectors claim one source.
func Registry() (*connectors.Registry, error) {
	r, err := connectors.NewRegistry(Connectors()...)
	if err != nil {
		return nil, fmt.Errorf("connectors/all: %w", err)
	}
	return r, nil
}
