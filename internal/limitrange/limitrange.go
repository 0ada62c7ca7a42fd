package limitrange

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultItems fills a LimitRange's Container items as the API does: the
// default limit falls back to max, the default request to the default
// limit, else to min.
func DefaultItems(lr *corev1.LimitRange) {
	for i := range lr.Spec.Limits {
		it := &lr.Spec.Limits[i]
		if it.Type != corev1.LimitTypeContainer {
			continue
		}
		for r, q := range it.Max {
			if _, ok := it.Default[r]; !ok {
				if it.Default == nil {
					it.Default = corev1.ResourceList{}
				}
				it.Default[r] = q.DeepCopy()
			}
		}
		for r, q := range it.Default {
			if _, ok := it.DefaultRequest[r]; !ok {
				if it.DefaultRequest == nil {
					it.DefaultRequest = corev1.ResourceList{}
				}
				it.DefaultRequest[r] = q.DeepCopy()
			}
		}
		for r, q := range it.Min {
			if _, ok := it.DefaultRequest[r]; !ok {
				if it.DefaultRequest == nil {
					it.DefaultRequest = corev1.ResourceList{}
				}
				it.DefaultRequest[r] = q.DeepCopy()
			}
		}
	}
}

// Validate checks a LimitRange as upstream: known types, each at most
// once, no defaults outside Container items, and for every resource
// min ≤ defaultRequest ≤ default ≤ max and maxLimitRequestRatio ≥ 1.
func Validate(lr *corev1.LimitRange) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.LimitType]bool{}
	for i, it := range lr.Spec.Limits {
		p := field.NewPath("spec", "limits").Index(i)
		switch it.Type {
		case corev1.LimitTypePod, corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim:
		case "":
			errs = append(errs, field.Required(p.Child("type"), ""))
		default:
			errs = append(errs, field.NotSupported(p.Child("type"), it.Type,
				[]string{string(corev1.LimitTypePod), string(corev1.LimitTypeContainer), string(corev1.LimitTypePersistentVolumeClaim)}))
		}
		if seen[it.Type] {
			errs = append(errs, field.Duplicate(p.Child("type"), it.Type))
		}
		seen[it.Type] = true
		if it.Type != corev1.LimitTypeContainer {
			if len(it.Default) > 0 {
				errs = append(errs, field.Forbidden(p.Child("default"), "may not be specified when `type` is '"+string(it.Type)+"'"))
			}
			if len(it.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(p.Child("defaultRequest"), "may not be specified when `type` is '"+string(it.Type)+"'"))
			}
		}
		for _, l := range []struct {
			name string
			list corev1.ResourceList
		}{{"max", it.Max}, {"min", it.Min}, {"default", it.Default}, {"defaultRequest", it.DefaultRequest}, {"maxLimitRequestRatio", it.MaxLimitRequestRatio}} {
			for r, q := range l.list {
				if q.Sign() < 0 {
					errs = append(errs, field.Invalid(p.Child(l.name).Key(string(r)), q.String(), "must be greater than or equal to 0"))
				}
			}
		}
		order := []struct {
			name string
			list corev1.ResourceList
		}{{"min", it.Min}, {"defaultRequest", it.DefaultRequest}, {"default", it.Default}, {"max", it.Max}}
		for a := 0; a < len(order); a++ {
			for b := a + 1; b < len(order); b++ {
				for r, lo := range order[a].list {
					hi, ok := order[b].list[r]
					if ok && lo.Cmp(hi) > 0 {
						errs = append(errs, field.Invalid(p.Child(order[a].name).Key(string(r)), lo.String(),
							fmt.Sprintf("%s value %s is greater than %s value %s", order[a].name, lo.String(), order[b].name, hi.String())))
					}
				}
			}
		}
		for r, q := range it.MaxLimitRequestRatio {
			if q.Cmp(resource.MustParse("1")) < 0 {
				errs = append(errs, field.Invalid(p.Child("maxLimitRequestRatio").Key(string(r)), q.String(), "ratio must be greater than or equal to 1"))
			}
		}
	}
	return errs
}

// ApplyDefaults gives every container of pod the default limits and
// requests of the Container items of ranges where it has none, and returns
// the kubernetes.io/limit-ranger annotation value describing what it set
// ("" when nothing).
func ApplyDefaults(pod *corev1.Pod, ranges []corev1.LimitRange) string {
	limits, requests := corev1.ResourceList{}, corev1.ResourceList{}
	for _, lr := range ranges {
		lr := lr.DeepCopy()
		DefaultItems(lr)
		for _, it := range lr.Spec.Limits {
			if it.Type != corev1.LimitTypeContainer {
				continue
			}
			for r, q := range it.Default {
				limits[r] = q.DeepCopy()
			}
			for r, q := range it.DefaultRequest {
				requests[r] = q.DeepCopy()
			}
		}
	}
	if len(limits) == 0 && len(requests) == 0 {
		return ""
	}
	var notes []string
	apply := func(c *corev1.Container, kind string) {
		var setReq, setLim []string
		for r, q := range limits {
			if _, ok := c.Resources.Limits[r]; !ok {
				if c.Resources.Limits == nil {
					c.Resources.Limits = corev1.ResourceList{}
				}
				c.Resources.Limits[r] = q.DeepCopy()
				setLim = append(setLim, string(r))
			}
		}
		for r, q := range requests {
			if _, ok := c.Resources.Requests[r]; !ok {
				if c.Resources.Requests == nil {
					c.Resources.Requests = corev1.ResourceList{}
				}
				// A limit the user set caps the default request.
				if l, ok := c.Resources.Limits[r]; ok && l.Cmp(q) < 0 && !contains(setLim, string(r)) {
					q = l
				}
				c.Resources.Requests[r] = q.DeepCopy()
				setReq = append(setReq, string(r))
			}
		}
		sort.Strings(setReq)
		sort.Strings(setLim)
		if len(setReq) > 0 {
			notes = append(notes, fmt.Sprintf("%s request for %s %s", strings.Join(setReq, ", "), kind, c.Name))
		}
		if len(setLim) > 0 {
			notes = append(notes, fmt.Sprintf("%s limit for %s %s", strings.Join(setLim, ", "), kind, c.Name))
		}
	}
	for i := range pod.Spec.InitContainers {
		apply(&pod.Spec.InitContainers[i], "init container")
	}
	for i := range pod.Spec.Containers {
		apply(&pod.Spec.Containers[i], "container")
	}
	if len(notes) == 0 {
		return ""
	}
	return "LimitRanger plugin set: " + strings.Join(notes, "; ")
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// CheckPod returns every way pod breaks the Container and Pod items of
// ranges, in upstream's words.
func CheckPod(pod *corev1.Pod, ranges []corev1.LimitRange) []string {
	var errs []string
	for _, lr := range ranges {
		for _, it := range lr.Spec.Limits {
			switch it.Type {
			case corev1.LimitTypeContainer:
				for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
					for _, c := range cs {
						errs = append(errs, check(it, "Container", c.Resources.Requests, c.Resources.Limits)...)
					}
				}
			case corev1.LimitTypePod:
				req, lim := podTotals(pod, it)
				errs = append(errs, check(it, "Pod", req, lim)...)
			}
		}
	}
	return errs
}

// podTotals sums requests and limits over the app containers, taking the
// largest init container where it is larger; a resource missing from any
// container is left out of the limits (the pod has no total limit then).
func podTotals(pod *corev1.Pod, it corev1.LimitRangeItem) (corev1.ResourceList, corev1.ResourceList) {
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	names := map[corev1.ResourceName]bool{}
	for _, l := range []corev1.ResourceList{it.Min, it.Max, it.MaxLimitRequestRatio} {
		for r := range l {
			names[r] = true
		}
	}
	for r := range names {
		var rs, ls resource.Quantity
		limited := true
		for _, c := range pod.Spec.Containers {
			if q, ok := c.Resources.Requests[r]; ok {
				rs.Add(q)
			}
			if q, ok := c.Resources.Limits[r]; ok {
				ls.Add(q)
			} else {
				limited = false
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if q, ok := c.Resources.Requests[r]; ok && q.Cmp(rs) > 0 {
				rs = q.DeepCopy()
			}
			if q, ok := c.Resources.Limits[r]; ok && q.Cmp(ls) > 0 {
				ls = q.DeepCopy()
			}
		}
		if _, ok := hasAny(pod, r, true); ok {
			req[r] = rs
		}
		if limited && len(pod.Spec.Containers) > 0 {
			lim[r] = ls
		}
	}
	return req, lim
}

func hasAny(pod *corev1.Pod, r corev1.ResourceName, requests bool) (resource.Quantity, bool) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			l := c.Resources.Limits
			if requests {
				l = c.Resources.Requests
			}
			if q, ok := l[r]; ok {
				return q, true
			}
		}
	}
	return resource.Quantity{}, false
}

// CheckClaim returns every way a claim's storage request breaks the
// PersistentVolumeClaim items of ranges.
func CheckClaim(pvc *corev1.PersistentVolumeClaim, ranges []corev1.LimitRange) []string {
	var errs []string
	for _, lr := range ranges {
		for _, it := range lr.Spec.Limits {
			if it.Type == corev1.LimitTypePersistentVolumeClaim {
				errs = append(errs, check(it, "PersistentVolumeClaim", pvc.Spec.Resources.Requests, pvc.Spec.Resources.Limits)...)
			}
		}
	}
	return errs
}

func check(it corev1.LimitRangeItem, kind string, req, lim corev1.ResourceList) []string {
	var errs []string
	for _, r := range sortedNames(it.Min) {
		min := it.Min[r]
		q, ok := req[r]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("minimum %s usage per %s is %s.  No request is specified", r, kind, min.String()))
		case q.Cmp(min) < 0:
			errs = append(errs, fmt.Sprintf("minimum %s usage per %s is %s, but request is %s", r, kind, min.String(), q.String()))
		}
	}
	for _, r := range sortedNames(it.Max) {
		max := it.Max[r]
		if kind == "PersistentVolumeClaim" {
			if q, ok := req[r]; ok && q.Cmp(max) > 0 {
				errs = append(errs, fmt.Sprintf("maximum %s usage per %s is %s, but request is %s", r, kind, max.String(), q.String()))
			}
			continue
		}
		q, ok := lim[r]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("maximum %s usage per %s is %s.  No limit is specified", r, kind, max.String()))
		case q.Cmp(max) > 0:
			errs = append(errs, fmt.Sprintf("maximum %s usage per %s is %s, but limit is %s", r, kind, max.String(), q.String()))
		}
	}
	for _, r := range sortedNames(it.MaxLimitRequestRatio) {
		ratio := it.MaxLimitRequestRatio[r]
		l, lok := lim[r]
		q, rok := req[r]
		if !lok {
			errs = append(errs, fmt.Sprintf("%s max limit to request ratio per %s is %s, but no limit is specified", r, kind, ratio.String()))
			continue
		}
		if !rok || q.IsZero() {
			errs = append(errs, fmt.Sprintf("%s max limit to request ratio per %s is %s, but no request is specified or request is 0", r, kind, ratio.String()))
			continue
		}
		got := float64(l.MilliValue()) / float64(q.MilliValue())
		if got > float64(ratio.MilliValue())/1000 {
			errs = append(errs, fmt.Sprintf("%s max limit to request ratio per %s is %s, but provided ratio is %f", r, kind, ratio.String(), got))
		}
	}
	return errs
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(l))
	for r := range l {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
