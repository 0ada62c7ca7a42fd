package kubelet

import (
	"context"
	"os"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on sandboxes and containers (upstream's names),
// so a restarted kubelet finds what belongs to which pod.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// podState is what the runtime has of one pod.
type podState struct {
	// sandboxes, newest first.
	sandboxes []*runtimeapi.PodSandbox
	// containers by name, newest attempt first.
	containers map[string][]*runtimeapi.ContainerStatus
}

func (s *podState) readySandbox() *runtimeapi.PodSandbox {
	for _, sb := range s.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return sb
		}
	}
	return nil
}

// latest is the newest attempt of a container, nil if none ran.
func (s *podState) latest(name string) *runtimeapi.ContainerStatus {
	if cs := s.containers[name]; len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// previous is the attempt before the newest, nil if none.
func (s *podState) previous(name string) *runtimeapi.ContainerStatus {
	if cs := s.containers[name]; len(cs) > 1 {
		return cs[1]
	}
	return nil
}

// podState reads a pod's sandboxes and containers from the runtime; only
// containers of the given sandbox count (those of dead sandboxes are gone
// with them).
func (k *Kubelet) podState(ctx context.Context, uid string, sandboxID string) (*podState, error) {
	sel := map[string]string{labelPodUID: uid}
	sbs, err := k.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].CreatedAt > sbs[j].CreatedAt })
	st := &podState{sandboxes: sbs, containers: map[string][]*runtimeapi.ContainerStatus{}}
	if sandboxID == "" {
		if sb := st.readySandbox(); sb != nil {
			sandboxID = sb.Id
		}
	}
	if sandboxID == "" {
		return st, nil
	}
	if st.containers, err = k.containerStates(ctx, uid, sandboxID); err != nil {
		return nil, err
	}
	return st, nil
}

// containerStates reads the containers of the pod's sandbox from the
// runtime: by name, newest attempt first.
func (k *Kubelet) containerStates(ctx context.Context, uid, sandboxID string) (map[string][]*runtimeapi.ContainerStatus, error) {
	cs, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID,
		LabelSelector: map[string]string{labelPodUID: uid}})
	if err != nil {
		return nil, err
	}
	out := map[string][]*runtimeapi.ContainerStatus{}
	for _, c := range cs {
		s, err := k.rt.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, err
		}
		name := s.GetMetadata().GetName()
		out[name] = append(out[name], s)
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool { return l[i].GetMetadata().GetAttempt() > l[j].GetMetadata().GetAttempt() })
	}
	return out, nil
}

func podLabels(p *corev1.Pod) map[string]string {
	l := make(map[string]string, len(p.Labels)+3)
	for k, v := range p.Labels {
		l[k] = v
	}
	l[labelPodName], l[labelPodNamespace], l[labelPodUID] = p.Name, p.Namespace, string(p.UID)
	return l
}

// sandboxConfig is the CRI sandbox of a pod; it must come out the same for
// every container created in the sandbox.
func (k *Kubelet) sandboxConfig(p *corev1.Pod, attempt uint32) *runtimeapi.PodSandboxConfig {
	hostname := p.Name
	if p.Spec.Hostname != "" {
		hostname = p.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	if p.Spec.HostNetwork {
		hostname = "" // the node's, as upstream: runc cannot set one without a UTS namespace
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: string(p.UID), Attempt: attempt},
		Hostname:     hostname,
		LogDirectory: k.cfg.podLogDir(p.Namespace, p.Name, string(p.UID)),
		DnsConfig:    k.podDNS(p),
		Labels:       podLabels(p),
		Annotations:  p.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: podCgroupOf(p),
			SecurityContext: sandboxSecurityContext(p, k.seccompRoot()), Sysctls: sysctls(p)},
	}
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort == 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch port.Protocol {
			case corev1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case corev1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{Protocol: proto,
				ContainerPort: port.ContainerPort, HostPort: port.HostPort, HostIp: port.HostIP})
		}
	}
	return cfg
}

// containerConfig is the CRI container of one attempt of c, with its
// resolved environment and mounts; $(VAR) in command and args expands
// through env.
func containerConfig(p *corev1.Pod, c *corev1.Container, attempt uint32, imageID string, env *envList, mounts []*runtimeapi.Mount) *runtimeapi.ContainerConfig {
	labels := map[string]string{labelPodName: p.Name, labelPodNamespace: p.Namespace, labelPodUID: string(p.UID), labelContainerName: c.Name}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:       &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: c.Image},
		Command:     expandAll(c.Command, env),
		Args:        expandAll(c.Args, env),
		WorkingDir:  c.WorkingDir,
		Labels:      labels,
		Annotations: map[string]string{"io.kubernetes.container.restartCount": strconv.Itoa(int(attempt))},
		LogPath:     c.Name + "/" + strconv.Itoa(int(attempt)) + ".log",
		Stdin:       c.Stdin,
		StdinOnce:   c.StdinOnce,
		Tty:         c.TTY,
		Mounts:      mounts,
		Linux:       &runtimeapi.LinuxContainerConfig{},
	}
	for _, name := range env.names {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: name, Value: []byte(env.vals[name])})
	}
	return cfg
}

func expandAll(in []string, env *envList) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, env.mapping())
	}
	return out
}

func mkdirLogs(cfg *runtimeapi.PodSandboxConfig, c *corev1.Container) error {
	return os.MkdirAll(cfg.LogDirectory+"/"+c.Name, 0o755)
}

// cgroupRoot is where pod cgroups go (cgroupfs driver), with upstream's QoS
// levels below it (resources.go: podCgroupOf, updateQOSCgroups); one
// directory per pod, removed with the pod's last sandbox.
const cgroupRoot = "/kubepods"

// removePodCgroup removes the pod's (empty) cgroup directory in every
// hierarchy (runc removes only the containers' own) and updates the QoS
// levels' shares.
func removePodCgroup(uid string) {
	for _, d := range podCgroupDirs(uid) {
		_ = os.Remove(d)
	}
	_ = updateQOSCgroups()
}
