package core

import (
	"context"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
)

func itoa(i int32) string { return strconv.FormatInt(int64(i), 10) }

func events() *registry.Resource {
	s := &registry.BaseStrategy{
		CreateOnUpdate: true,
		DefaultFunc: func(obj runtime.Object) {
			ev := obj.(*corev1.Event)
			if ev.Type == "" {
				ev.Type = corev1.EventTypeNormal
			}
		},
		ValidateFunc: func(_ context.Context, obj runtime.Object) field.ErrorList {
			ev := obj.(*corev1.Event)
			var errs field.ErrorList
			if ev.InvolvedObject.Namespace != "" && ev.Namespace != ev.InvolvedObject.Namespace {
				errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ev.InvolvedObject.Namespace, "does not match event.namespace"))
			}
			return errs
		},
	}
	r := resource("events", "Event", true, func() runtime.Object { return &corev1.Event{} },
		func() runtime.Object { return &corev1.EventList{} }, s)
	r.ShortNames = []string{"ev"}
	r.FieldSelectorKeys = []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
		"involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}
	r.FieldSet = func(obj runtime.Object) fields.Set {
		ev := obj.(*corev1.Event)
		source := ev.Source.Component
		if source == "" {
			source = ev.ReportingController
		}
		return fields.Set{
			"involvedObject.kind":            ev.InvolvedObject.Kind,
			"involvedObject.namespace":       ev.InvolvedObject.Namespace,
			"involvedObject.name":            ev.InvolvedObject.Name,
			"involvedObject.uid":             string(ev.InvolvedObject.UID),
			"involvedObject.apiVersion":      ev.InvolvedObject.APIVersion,
			"involvedObject.resourceVersion": ev.InvolvedObject.ResourceVersion,
			"involvedObject.fieldPath":       ev.InvolvedObject.FieldPath,
			"reason":                         ev.Reason,
			"reportingComponent":             ev.ReportingController,
			"source":                         source,
			"type":                           ev.Type,
		}
	}
	return r
}
