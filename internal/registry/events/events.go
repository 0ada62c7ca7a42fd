// Package events describes events.k8s.io/v1 events. No I/O.
package events

import (
	"context"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Resources returns events.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	s := &registry.BaseStrategy{CreateOnUpdate: true, ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
		ev := o.(*eventsv1.Event)
		var errs field.ErrorList
		if ev.EventTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
		}
		if ev.Type != "Normal" && ev.Type != "Warning" {
			errs = append(errs, field.NotSupported(field.NewPath("type"), ev.Type, []string{"Normal", "Warning"}))
		}
		if ev.ReportingController == "" {
			errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
		}
		if ev.ReportingInstance == "" {
			errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
		}
		if ev.Action == "" {
			errs = append(errs, field.Required(field.NewPath("action"), ""))
		}
		if ev.Reason == "" {
			errs = append(errs, field.Required(field.NewPath("reason"), ""))
		}
		return errs
	}}
	return []*registry.Resource{{
		GroupVersionResource: eventsv1.SchemeGroupVersion.WithResource("events"),
		Kind:                 "Event", SingularName: "event", ShortNames: []string{"ev"}, Namespaced: true, Strategy: s,
		New: func() runtime.Object { return &eventsv1.Event{} }, NewList: func() runtime.Object { return &eventsv1.EventList{} },
		FieldSelectorKeys: []string{"regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "reason", "reportingController", "type"},
		FieldSet: func(o runtime.Object) fields.Set {
			ev := o.(*eventsv1.Event)
			return fields.Set{"regarding.kind": ev.Regarding.Kind, "regarding.namespace": ev.Regarding.Namespace,
				"regarding.name": ev.Regarding.Name, "regarding.uid": string(ev.Regarding.UID), "reason": ev.Reason,
				"reportingController": ev.ReportingController, "type": ev.Type}
		},
	}}
}
