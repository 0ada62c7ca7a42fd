package printers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Clock tells the time for AGE columns.
type Clock func() time.Time

// column is one column: its definition and how to compute a cell.
type column struct {
	def  metav1.TableColumnDefinition
	cell func(obj runtime.Object, now time.Time) interface{}
}

// table is a TableConvertor from a column list.
type table struct {
	cols []column
	now  Clock
}

var _ registry.TableConvertor = (*table)(nil)

func (t *table) ColumnDefinitions() []metav1.TableColumnDefinition {
	out := make([]metav1.TableColumnDefinition, len(t.cols))
	for i, c := range t.cols {
		out[i] = c.def
	}
	return out
}

func (t *table) Cells(obj runtime.Object) ([]interface{}, error) {
	if _, err := meta.Accessor(obj); err != nil {
		return nil, fmt.Errorf("printers: %w", err)
	}
	now := t.now()
	cells := make([]interface{}, len(t.cols))
	for i, c := range t.cols {
		cells[i] = c.cell(obj, now)
	}
	return cells, nil
}

// descriptions upstream uses for NAME and AGE.
var (
	nameDesc = metav1.ObjectMeta{}.SwaggerDoc()["name"]
	ageDesc  = metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]
)

func nameCol() column {
	return column{def: metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: nameDesc},
		cell: func(o runtime.Object, _ time.Time) interface{} { m, _ := meta.Accessor(o); return m.GetName() }}
}

func ageCol() column {
	return column{def: metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: ageDesc},
		cell: func(o runtime.Object, now time.Time) interface{} {
			m, _ := meta.Accessor(o)
			return age(m.GetCreationTimestamp(), now)
		}}
}

// col builds a column whose cell function takes the typed object.
func col[T runtime.Object](name, typ string, priority int32, desc string, f func(T, time.Time) interface{}) column {
	return column{def: metav1.TableColumnDefinition{Name: name, Type: typ, Priority: priority, Description: desc},
		cell: func(o runtime.Object, now time.Time) interface{} {
			t, ok := o.(T)
			if !ok {
				return "<unknown>"
			}
			return f(t, now)
		}}
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// For returns the convertor for gvr, nil when it has no specific columns.
func For(gvr schema.GroupVersionResource) registry.TableConvertor {
	return ForClock(gvr, time.Now)
}

// ForClock is For with an injected clock.
func ForClock(gvr schema.GroupVersionResource, now Clock) registry.TableConvertor {
	build, ok := tables[gvr]
	if !ok {
		return nil
	}
	return &table{cols: build(), now: now}
}

// Default is NAME and AGE.
func Default() registry.TableConvertor {
	return &table{cols: []column{nameCol(), ageCol()}, now: time.Now}
}

var tables = map[schema.GroupVersionResource]func() []column{}

func register(group, version, resource string, cols func() []column) {
	tables[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}] = cols
}
