package apiserver

import (
	"context"
	"errors"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/limitrange"
)

var limitRangesGVR = schema.GroupVersionResource{Version: "v1", Resource: "limitranges"}

// limitRangerAnnotation records which defaults the LimitRanger set.
const limitRangerAnnotation = "kubernetes.io/limit-ranger"

// admitLimitRanges is upstream's LimitRanger admission for a new pod or
// claim: the namespace's LimitRanges default container requests and
// limits, then their minimums, maximums and ratios must hold (403 naming
// each violation otherwise).
func (s *Server) admitLimitRanges(ctx context.Context, res *resource, obj runtime.Object) error {
	pod, isPod := obj.(*corev1.Pod)
	pvc, isClaim := obj.(*corev1.PersistentVolumeClaim)
	if !isPod && !isClaim {
		return nil
	}
	lrRes := s.resources[limitRangesGVR]
	if lrRes == nil {
		return nil
	}
	ns, name := "", ""
	if isPod {
		ns, name = pod.Namespace, pod.Name
	} else {
		ns, name = pvc.Namespace, pvc.Name
	}
	list := &corev1.LimitRangeList{}
	if err := s.listPolicies(ctx, lrRes, ns, list); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		return nil
	}
	var problems []string
	if isPod {
		if note := limitrange.ApplyDefaults(pod, list.Items); note != "" {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[limitRangerAnnotation] = note
		}
		problems = limitrange.CheckPod(pod, list.Items)
	} else {
		problems = limitrange.CheckClaim(pvc, list.Items)
	}
	switch len(problems) {
	case 0:
		return nil
	case 1:
		return apierrors.NewForbidden(res.gr, name, errors.New(problems[0]))
	}
	return apierrors.NewForbidden(res.gr, name, errors.New("["+strings.Join(problems, ", ")+"]"))
}
