package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// matchFailurePolicy applies a Job's podFailurePolicy to a failed pod, as
// upstream: the first matching rule decides. It returns the FailJob
// message (nil unless the action is FailJob), whether the failure counts
// toward backoffLimit, and the matched action (nil if no rule matched).
func matchFailurePolicy(pfp *batchv1.PodFailurePolicy, p *corev1.Pod) (*string, bool, *batchv1.PodFailurePolicyAction) {
	if pfp == nil {
		return nil, true, nil
	}
	for i, r := range pfp.Rules {
		var msg string
		switch {
		case r.OnExitCodes != nil:
			cs := matchingContainer(p, r.OnExitCodes)
			if cs == nil {
				continue
			}
			msg = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, r.Action, i)
		case len(r.OnPodConditions) > 0:
			ct, ok := matchingCondition(p, r.OnPodConditions)
			if !ok {
				continue
			}
			msg = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", p.Namespace, p.Name, ct, r.Action, i)
		default:
			continue
		}
		action := r.Action
		switch action {
		case batchv1.PodFailurePolicyActionFailJob:
			return &msg, true, &action
		case batchv1.PodFailurePolicyActionIgnore:
			return nil, false, &action
		default: // Count, FailIndex
			return nil, true, &action
		}
	}
	return nil, true, nil
}

func matchingContainer(p *corev1.Pod, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			if req.ContainerName != nil && *req.ContainerName != cs.Name {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
				return cs
			}
		}
	}
	return nil
}

func matchingCondition(p *corev1.Pod, reqs []batchv1.PodFailurePolicyOnPodConditionsPattern) (corev1.PodConditionType, bool) {
	for _, req := range reqs {
		for _, c := range p.Status.Conditions {
			st := req.Status
			if st == "" {
				st = corev1.ConditionTrue
			}
			if c.Type == req.Type && c.Status == st {
				return c.Type, true
			}
		}
	}
	return "", false
}
