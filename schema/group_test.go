package schema_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/firmbridge/firmbridge"
	"github.com/firmbridge/firmbridge/schema"
)

type testRow struct {
	table string
	cols  []string
	id    int
}

func (r testRow) Table() string     { return r.table }
func (r testRow) Columns() []string { return r.cols }
func (r testRow) Values() []any     { return []any{r.id} }

// Rows go to one group per table and column list, in first-seen order,
// keeping their own order; equal column lists in different slices are one
// list, and the same table with other columns is another group.
func TestGroupRows(t *testing.T) {
	ab, ab2, ac := []string{"a", "b"}, []string{"a", "b"}, []string{"a", "c"}
	rows := []firmbridge.Row{
		testRow{"t1", ab, 1}, testRow{"t2", ab, 2}, testRow{"t1", ab2, 3},
		testRow{"t1", ac, 4}, testRow{"t2", ab, 5}, testRow{"t1", ab, 6},
	}
	var got []string
	for _, g := range schema.GroupRows(rows) {
		var ids []int
		for _, r := range g.Rows {
			ids = append(ids, r.(testRow).id)
		}
		got = append(got, fmt.Sprintf("%s%v:%v", g.Table, g.Columns, ids))
	}
	want := []string{"t1[a b]:[1 3 6]", "t2[a b]:[2 5]", "t1[a c]:[4]"}
	if !slices.Equal(got, want) {
		t.Errorf("GroupRows = %v, want %v", got, want)
	}
	if g := schema.GroupRows(nil); len(g) != 0 {
		t.Errorf("GroupRows(nil) = %v", g)
	}
}
