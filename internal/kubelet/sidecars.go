package kubelet

import (
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// isSidecar reports whether an init container is a restartable one
// (restartPolicy Always): it starts in order with the other init
// containers, keeps running beside the containers, restarts whenever it
// exits, and stops after them.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// initialized reports whether the pod's init phase is over: some regular
// container has been created. Sidecars that exit later restart beside the
// containers without taking the pod back to initializing.
func initialized(p *corev1.Pod, st *podState) bool {
	for i := range p.Spec.Containers {
		if st.latest(p.Spec.Containers[i].Name) != nil {
			return true
		}
	}
	return false
}

// sidecarStarted is upstream's test before the next init container may
// start: the sidecar runs and its startup probe, if any, passed.
func (k *Kubelet) sidecarStarted(c *corev1.Container, cs *runtimeapi.ContainerStatus) bool {
	if cs == nil || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return false
	}
	if c.StartupProbe == nil {
		return true
	}
	ok, _ := k.probes.result(cs.Id, startup)
	return ok
}
