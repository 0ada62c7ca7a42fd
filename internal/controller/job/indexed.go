package job

import (
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// noIndex marks a pod without a valid completion index.
const noIndex = -1

func isIndexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

// completionIndex reads the pod's completion index annotation (the label is
// a copy for selection).
func completionIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return noIndex
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return noIndex
	}
	return i
}

// interval is an inclusive range of indexes.
type interval struct{ first, last int }

// intervals is a sorted, non-overlapping, non-adjacent list of intervals:
// the form of status.completedIndexes.
type intervals []interval

// parseIntervals reads "1,3-5,7", ignoring malformed parts and indexes at
// or beyond completions, as upstream does.
func parseIntervals(s string, completions int) intervals {
	var idx []int
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for i := first; i <= last && i < completions; i++ {
			idx = append(idx, i)
		}
	}
	return intervals(nil).with(idx)
}

// with returns the union of the intervals and the given indexes.
func (iv intervals) with(idx []int) intervals {
	all := append([]int(nil), idx...)
	for _, v := range iv {
		for i := v.first; i <= v.last; i++ {
			all = append(all, i)
		}
	}
	sort.Ints(all)
	var out intervals
	for _, i := range all {
		if n := len(out); n > 0 && i <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, i)
			continue
		}
		out = append(out, interval{i, i})
	}
	return out
}

func (iv intervals) has(i int) bool {
	for _, v := range iv {
		if i >= v.first && i <= v.last {
			return true
		}
	}
	return false
}

func (iv intervals) total() int {
	n := 0
	for _, v := range iv {
		n += v.last - v.first + 1
	}
	return n
}

// String renders upstream's format: a range of two is written "1,2", a
// longer one "1-3".
func (iv intervals) String() string {
	var b strings.Builder
	for _, v := range iv {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(v.first))
		switch {
		case v.last == v.first+1:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(v.last))
		case v.last > v.first:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(v.last))
		}
	}
	return b.String()
}

// pendingIndexes returns up to n indexes below completions that neither
// succeeded nor have an active pod, lowest first.
func pendingIndexes(succeeded intervals, active []*corev1.Pod, n, completions int) []int {
	busy := map[int]bool{}
	for _, p := range active {
		busy[completionIndex(p)] = true
	}
	var out []int
	for i := 0; i < completions && len(out) < n; i++ {
		if !busy[i] && !succeeded.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// surplusIndexed returns the active pods of an Indexed Job that must go
// whatever the parallelism: no valid index, an index that already
// succeeded, or a second pod for the same index.
func surplusIndexed(active []*corev1.Pod, succeeded intervals, completions int) []*corev1.Pod {
	var out []*corev1.Pod
	seen := map[int]bool{}
	sorted := append([]*corev1.Pod(nil), active...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].CreationTimestamp.Before(&sorted[j].CreationTimestamp) })
	for _, p := range sorted {
		ix := completionIndex(p)
		if ix == noIndex || ix >= completions || succeeded.has(ix) || seen[ix] {
			out = append(out, p)
			continue
		}
		seen[ix] = true
	}
	return out
}

// addIndex stamps a pod of an Indexed Job with its index: annotation,
// label, hostname <job>-<index>, JOB_COMPLETION_INDEX in every container.
func addIndex(p *corev1.Pod, job string, ix int) {
	s := strconv.Itoa(ix)
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[batchv1.JobCompletionIndexAnnotation] = s
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[batchv1.JobCompletionIndexAnnotation] = s
	if p.Spec.Hostname == "" {
		p.Spec.Hostname = job + "-" + s
	}
	p.GenerateName = job + "-" + s + "-"
	env := corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: "metadata.annotations['" + batchv1.JobCompletionIndexAnnotation + "']"}}}
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if !hasEnv(cs[i].Env, env.Name) {
				cs[i].Env = append(cs[i].Env, env)
			}
		}
	}
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}
