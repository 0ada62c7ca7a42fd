package endpointutil

import (
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// ShouldPodBeInEndpoints reports whether a pod is an endpoint at all: it
// has an IP, has not finished, and (unless includeTerminating) is not
// being deleted.
func ShouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.Status.PodIP == "" && len(pod.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

// ShouldSetHostname reports whether the endpoint carries the pod's
// hostname: the pod names the Service as its subdomain.
func ShouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && svc.Namespace == pod.Namespace
}

// IsServiceIPSet reports a Service with a cluster IP (not headless).
func IsServiceIPSet(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.ClusterIP != ""
}

// FindPort resolves a Service port's targetPort on a pod: a number is used
// as is, a name is looked up among the ports of the pod's containers (and
// sidecar init containers) with the same protocol.
func FindPort(pod *corev1.Pod, sp *corev1.ServicePort) (int32, error) {
	tp := sp.TargetPort
	switch tp.Type {
	case intstr.Int:
		if tp.IntVal == 0 {
			return sp.Port, nil // not defaulted: upstream defaults targetPort to port
		}
		return tp.IntVal, nil
	case intstr.String:
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal && protocol(p.Protocol) == protocol(sp.Protocol) {
					return p.ContainerPort, nil
				}
			}
		}
		for _, c := range pod.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, p := range c.Ports {
				if p.Name == tp.StrVal && protocol(p.Protocol) == protocol(sp.Protocol) {
					return p.ContainerPort, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no suitable port for manifest: %s", pod.UID)
}

func protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// PodIPs lists a pod's IPs (status.podIPs, or status.podIP when the list
// is empty).
func PodIPs(pod *corev1.Pod) []string {
	if len(pod.Status.PodIPs) == 0 {
		if pod.Status.PodIP == "" {
			return nil
		}
		return []string{pod.Status.PodIP}
	}
	out := make([]string, 0, len(pod.Status.PodIPs))
	for _, ip := range pod.Status.PodIPs {
		out = append(out, ip.IP)
	}
	return out
}

// IsIPv6 reports whether s is an IPv6 address.
func IsIPv6(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() == nil
}

// PodChanged reports whether a pod update can change any endpoints: its
// labels (membership), or anything an endpoint is built from.
func PodChanged(old, cur *corev1.Pod) (endpointsChanged, labelsChanged bool) {
	labelsChanged = !labels.Equals(old.Labels, cur.Labels)
	if (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		controller.IsPodReady(old) != controller.IsPodReady(cur) ||
		old.Status.Phase != cur.Status.Phase ||
		old.Status.PodIP != cur.Status.PodIP ||
		!apiequality.Semantic.DeepEqual(old.Status.PodIPs, cur.Status.PodIPs) ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain ||
		old.UID != cur.UID {
		return true, labelsChanged
	}
	// Ready's transition time feeds the trigger-time annotation; container
	// ports are immutable but init containers' are compared cheaply anyway.
	oc, cc := controller.PodReadyCondition(old), controller.PodReadyCondition(cur)
	if (oc == nil) != (cc == nil) || (oc != nil && !oc.LastTransitionTime.Equal(&cc.LastTransitionTime)) {
		return true, labelsChanged
	}
	return false, labelsChanged
}
