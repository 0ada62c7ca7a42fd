// Package batch describes the batch/v1 resources (jobs, cronjobs):
// defaults, the generated job selector, validation. No I/O.
package batch

import (
	"context"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/registry/defaults"
	"github.com/skiff-sh/skiff/internal/registry/validation"
)

var gv = batchv1.SchemeGroupVersion

// Resources returns the batch/v1 resources.
func Resources() []*registry.Resource {
	js := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc:          func(o runtime.Object) { defaultJob(o.(*batchv1.Job)) },
		PrepareForCreateFunc: func(_ context.Context, o runtime.Object) { generateSelector(o.(*batchv1.Job)) },
		ValidateFunc:         func(_ context.Context, o runtime.Object) field.ErrorList { return validateJob(o.(*batchv1.Job)) },
		ValidateUpdateFunc: func(_ context.Context, o, old runtime.Object) field.ErrorList {
			j, oj := o.(*batchv1.Job), old.(*batchv1.Job)
			errs := validateJob(j)
			spec := field.NewPath("spec")
			if !apiequality.Semantic.DeepEqual(j.Spec.Selector, oj.Spec.Selector) {
				errs = append(errs, field.Invalid(spec.Child("selector"), j.Spec.Selector, "field is immutable"))
			}
			if !apiequality.Semantic.DeepEqual(j.Spec.Completions, oj.Spec.Completions) && !(j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion) {
				errs = append(errs, field.Invalid(spec.Child("completions"), j.Spec.Completions, "field is immutable"))
			}
			if !apiequality.Semantic.DeepEqual(j.Spec.Template, oj.Spec.Template) && !(oj.Spec.Suspend != nil && *oj.Spec.Suspend) {
				errs = append(errs, field.Invalid(spec.Child("template"), "", "field is immutable"))
			}
			return errs
		},
	}
	cjs := &registry.BaseStrategy{HasStatus: true,
		DefaultFunc: func(o runtime.Object) { defaultCronJob(o.(*batchv1.CronJob)) },
		ValidateFunc: func(_ context.Context, o runtime.Object) field.ErrorList {
			return validateCronJob(o.(*batchv1.CronJob))
		},
	}
	job := &registry.Resource{GroupVersionResource: gv.WithResource("jobs"), Kind: "Job", SingularName: "job", Namespaced: true,
		Categories: []string{"all"}, Strategy: js,
		New: func() runtime.Object { return &batchv1.Job{} }, NewList: func() runtime.Object { return &batchv1.JobList{} },
		FieldSelectorKeys: []string{"status.successful"},
		FieldSet: func(o runtime.Object) fields.Set {
			return fields.Set{"status.successful": strconv.Itoa(int(o.(*batchv1.Job).Status.Succeeded))}
		},
		Subresources: map[string]*registry.Subresource{"status": {Strategy: &registry.StatusStrategy{Parent: js}, Verbs: []string{"get", "patch", "update"}}},
	}
	cj := &registry.Resource{GroupVersionResource: gv.WithResource("cronjobs"), Kind: "CronJob", SingularName: "cronjob", Namespaced: true,
		ShortNames: []string{"cj"}, Categories: []string{"all"}, Strategy: cjs,
		New: func() runtime.Object { return &batchv1.CronJob{} }, NewList: func() runtime.Object { return &batchv1.CronJobList{} },
		Subresources: map[string]*registry.Subresource{"status": {Strategy: &registry.StatusStrategy{Parent: cjs}, Verbs: []string{"get", "patch", "update"}}},
	}
	return []*registry.Resource{job, cj}
}

func i32(v int32) *int32 { return &v }

func defaultJobSpec(spec *batchv1.JobSpec) {
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions, spec.Parallelism = i32(1), i32(1)
	}
	if spec.Parallelism == nil {
		spec.Parallelism = i32(1)
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = i32(1<<31 - 1)
		} else {
			spec.BackoffLimit = i32(6)
		}
	}
	if spec.CompletionMode == nil {
		m := batchv1.NonIndexedCompletion
		spec.CompletionMode = &m
	}
	if spec.Suspend == nil {
		f := false
		spec.Suspend = &f
	}
	if spec.ManualSelector == nil {
		f := false
		spec.ManualSelector = &f
	}
	if spec.PodReplacementPolicy == nil {
		p := batchv1.TerminatingOrFailed
		if spec.PodFailurePolicy != nil {
			p = batchv1.Failed
		}
		spec.PodReplacementPolicy = &p
	}
	defaults.PodTemplateSpec(&spec.Template)
}

func defaultJob(j *batchv1.Job) { defaultJobSpec(&j.Spec) }

// generateSelector gives a job the unique selector and pod labels upstream
// generates unless manualSelector is set.
func generateSelector(j *batchv1.Job) {
	if j.Spec.ManualSelector != nil && *j.Spec.ManualSelector {
		return
	}
	uid := string(j.UID)
	if j.Spec.Template.Labels == nil {
		j.Spec.Template.Labels = map[string]string{}
	}
	for k, v := range map[string]string{
		batchv1.ControllerUidLabel: uid, batchv1.JobNameLabel: j.Name,
		"controller-uid": uid, "job-name": j.Name,
	} {
		j.Spec.Template.Labels[k] = v
	}
	j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: uid}}
}

func validateJob(j *batchv1.Job) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validation.NonNegative(j.Spec.Parallelism, spec.Child("parallelism"))
	errs = append(errs, validation.NonNegative(j.Spec.Completions, spec.Child("completions"))...)
	errs = append(errs, validation.NonNegative(j.Spec.BackoffLimit, spec.Child("backoffLimit"))...)
	if d := j.Spec.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(spec.Child("activeDeadlineSeconds"), *d, "must be greater than or equal to 1"))
	}
	if j.Spec.Selector == nil {
		errs = append(errs, field.Required(spec.Child("selector"), ""))
	} else {
		errs = append(errs, validation.ValidateSelectorMatchesTemplate(j.Spec.Selector, j.Spec.Template.Labels, spec.Child("selector"), spec.Child("template", "metadata", "labels"))...)
	}
	if m := j.Spec.CompletionMode; m != nil && *m == batchv1.IndexedCompletion && j.Spec.Completions == nil {
		errs = append(errs, field.Required(spec.Child("completions"), "when completion mode is Indexed"))
	}
	return append(errs, validateJobTemplate(&j.Spec.Template, spec.Child("template"))...)
}

func validateJobTemplate(t *corev1.PodTemplateSpec, path *field.Path) field.ErrorList {
	errs := validation.ValidatePodTemplateSpec(t, path)
	if rp := t.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(path.Child("spec", "restartPolicy"), rp, []string{"OnFailure", "Never"}))
	}
	return errs
}

func defaultCronJob(c *batchv1.CronJob) {
	if c.Spec.ConcurrencyPolicy == "" {
		c.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if c.Spec.Suspend == nil {
		f := false
		c.Spec.Suspend = &f
	}
	if c.Spec.SuccessfulJobsHistoryLimit == nil {
		c.Spec.SuccessfulJobsHistoryLimit = i32(3)
	}
	if c.Spec.FailedJobsHistoryLimit == nil {
		c.Spec.FailedJobsHistoryLimit = i32(1)
	}
	defaultJobSpec(&c.Spec.JobTemplate.Spec)
}

func validateCronJob(c *batchv1.CronJob) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if c.Spec.Schedule == "" {
		errs = append(errs, field.Required(spec.Child("schedule"), ""))
	} else if msg := checkSchedule(c.Spec.Schedule); msg != "" {
		errs = append(errs, field.Invalid(spec.Child("schedule"), c.Spec.Schedule, msg))
	}
	if tz := c.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || *tz == "" || strings.EqualFold(*tz, "local") {
			errs = append(errs, field.Invalid(spec.Child("timeZone"), *tz, "unknown time zone "+*tz))
		}
	}
	switch c.Spec.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		errs = append(errs, field.NotSupported(spec.Child("concurrencyPolicy"), c.Spec.ConcurrencyPolicy, []string{"Allow", "Forbid", "Replace"}))
	}
	errs = append(errs, validation.NonNegative(c.Spec.SuccessfulJobsHistoryLimit, spec.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, validation.NonNegative(c.Spec.FailedJobsHistoryLimit, spec.Child("failedJobsHistoryLimit"))...)
	return append(errs, validateJobTemplate(&c.Spec.JobTemplate.Spec.Template, spec.Child("jobTemplate", "spec", "template"))...)
}

// checkSchedule validates a 5-field cron expression (or a @macro) and
// returns upstream-style text for a bad one.
func checkSchedule(s string) string {
	if strings.HasPrefix(s, "@") {
		switch s {
		case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
			return ""
		}
		if d, ok := strings.CutPrefix(s, "@every "); ok {
			if _, err := time.ParseDuration(strings.TrimSpace(d)); err != nil {
				return "failed to parse duration " + s + ": " + err.Error()
			}
			return ""
		}
		return "unrecognized descriptor: " + s
	}
	f := strings.Fields(s)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
	}
	if len(f) != 5 {
		return "expected exactly 5 fields, found " + strconv.Itoa(len(f)) + ": " + s
	}
	bounds := [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}
	names := [5]map[string]int{nil, nil, nil,
		{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12},
		{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}}
	for i, field := range f {
		for _, part := range strings.Split(field, ",") {
			rng, step, hasStep := strings.Cut(part, "/")
			if hasStep {
				if n, err := strconv.Atoi(step); err != nil || n <= 0 {
					return "failed to parse int from " + step
				}
			}
			if rng == "*" || rng == "?" {
				continue
			}
			lo, hi, isRange := strings.Cut(rng, "-")
			for _, v := range []string{lo, hi} {
				if v == "" && !isRange && v == hi {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil {
					if m, ok := names[i][strings.ToLower(v)]; ok {
						n = m
					} else {
						return "failed to parse int from " + v
					}
				}
				if n < bounds[i][0] || n > bounds[i][1] {
					return "end of range (" + strconv.Itoa(n) + ") above maximum (" + strconv.Itoa(bounds[i][1]) + "): " + v
				}
			}
		}
	}
	return ""
}
