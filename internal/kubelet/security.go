package kubelet

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// effectiveSecurityContext merges the pod's security context into the
// container's as upstream's DetermineEffectiveSecurityContext does: the
// fields both levels have come from the container when it sets them, the
// rest are the container's own.
func effectiveSecurityContext(p *corev1.Pod, c *corev1.Container) *corev1.SecurityContext {
	sc := &corev1.SecurityContext{}
	if c.SecurityContext != nil {
		sc = c.SecurityContext.DeepCopy()
	}
	ps := p.Spec.SecurityContext
	if ps == nil {
		return sc
	}
	if sc.SELinuxOptions == nil && ps.SELinuxOptions != nil {
		sc.SELinuxOptions = ps.SELinuxOptions.DeepCopy()
	}
	if sc.RunAsUser == nil && ps.RunAsUser != nil {
		sc.RunAsUser = ptrTo(*ps.RunAsUser)
	}
	if sc.RunAsGroup == nil && ps.RunAsGroup != nil {
		sc.RunAsGroup = ptrTo(*ps.RunAsGroup)
	}
	if sc.RunAsNonRoot == nil && ps.RunAsNonRoot != nil {
		sc.RunAsNonRoot = ptrTo(*ps.RunAsNonRoot)
	}
	if sc.SeccompProfile == nil && ps.SeccompProfile != nil {
		sc.SeccompProfile = ps.SeccompProfile.DeepCopy()
	}
	if sc.AppArmorProfile == nil && ps.AppArmorProfile != nil {
		sc.AppArmorProfile = ps.AppArmorProfile.DeepCopy()
	}
	return sc
}

// namespaceOptions are the pod's Linux namespaces: the node's network, PID
// and IPC namespaces for hostNetwork, hostPID and hostIPC; one PID
// namespace per pod with shareProcessNamespace, else one per container.
func namespaceOptions(p *corev1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if p.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if p.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case p.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case p.Spec.ShareProcessNamespace != nil && *p.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

// supplementalGroups is the pod's fsGroup followed by its
// supplementalGroups, as upstream passes them to every container.
func supplementalGroups(p *corev1.Pod) []int64 {
	ps := p.Spec.SecurityContext
	if ps == nil {
		return nil
	}
	var gs []int64
	if ps.FSGroup != nil {
		gs = append(gs, *ps.FSGroup)
	}
	gs = append(gs, ps.SupplementalGroups...)
	return gs
}

// anyPrivileged reports whether a container of the pod is privileged; the
// runtime then needs a privileged sandbox.
func anyPrivileged(p *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
				return true
			}
		}
	}
	return false
}

// seccompProfile maps an API profile to CRI; none is Unconfined, as
// upstream's kubelet without SeccompDefault. Localhost profiles are files
// under root.
func seccompProfile(sp *corev1.SeccompProfile, root string) *runtimeapi.SecurityProfile {
	if sp == nil {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	}
	switch sp.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.SeccompProfileTypeLocalhost:
		ref := ""
		if sp.LocalhostProfile != nil {
			ref = filepath.Join(root, *sp.LocalhostProfile)
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// appArmorProfile maps an API profile to CRI; nil leaves the runtime's
// default.
func appArmorProfile(ap *corev1.AppArmorProfile) *runtimeapi.SecurityProfile {
	if ap == nil {
		return nil
	}
	switch ap.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	case corev1.AppArmorProfileTypeLocalhost:
		ref := ""
		if ap.LocalhostProfile != nil {
			ref = *ap.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: ref}
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
}

// sandboxSecurityContext is the sandbox's: namespaces, the pod's user and
// groups, privileged if any container is, and the pod's seccomp profile.
func sandboxSecurityContext(p *corev1.Pod, seccompRoot string) *runtimeapi.LinuxSandboxSecurityContext {
	sc := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions:   namespaceOptions(p),
		SupplementalGroups: supplementalGroups(p),
		Privileged:         anyPrivileged(p),
	}
	ps := p.Spec.SecurityContext
	if ps == nil {
		sc.Seccomp = seccompProfile(nil, seccompRoot)
		return sc
	}
	if ps.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *ps.RunAsUser}
	}
	if ps.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *ps.RunAsGroup}
	}
	sc.Seccomp = seccompProfile(ps.SeccompProfile, seccompRoot)
	return sc
}

// containerSecurityContext is the CRI security context of c in p.
func containerSecurityContext(p *corev1.Pod, c *corev1.Container, seccompRoot string) *runtimeapi.LinuxContainerSecurityContext {
	sc := effectiveSecurityContext(p, c)
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(p),
		SupplementalGroups: supplementalGroups(p),
		Seccomp:            seccompProfile(sc.SeccompProfile, seccompRoot),
		Apparmor:           appArmorProfile(sc.AppArmorProfile),
	}
	if sc.RunAsUser != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	if sc.Privileged != nil {
		out.Privileged = *sc.Privileged
	}
	if sc.ReadOnlyRootFilesystem != nil {
		out.ReadonlyRootfs = *sc.ReadOnlyRootFilesystem
	}
	if sc.Capabilities != nil {
		out.Capabilities = &runtimeapi.Capability{}
		for _, c := range sc.Capabilities.Add {
			out.Capabilities.AddCapabilities = append(out.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range sc.Capabilities.Drop {
			out.Capabilities.DropCapabilities = append(out.Capabilities.DropCapabilities, string(c))
		}
	}
	// no_new_privs only when allowPrivilegeEscalation is false, as upstream.
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		out.NoNewPrivs = true
	}
	if o := sc.SELinuxOptions; o != nil {
		out.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	}
	// /proc and /sys paths that leak or reconfigure the host: masked and
	// read-only unless procMount is Unmasked, as upstream's kubelet asks
	// (the runtime leaves them out for privileged containers itself).
	if sc.ProcMount == nil || *sc.ProcMount != corev1.UnmaskedProcMount {
		out.MaskedPaths = slices.Clone(defaultMaskedPaths)
		out.ReadonlyPaths = slices.Clone(defaultReadonlyPaths)
	} else {
		out.MaskedPaths, out.ReadonlyPaths = []string{}, []string{}
	}
	return out
}

// Upstream's default masked and read-only paths (the runc/moby defaults).
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// verifyRunAsNonRoot is upstream's check of runAsNonRoot against the
// container's user (its runAsUser, else the image's user; an image without
// one runs as root). The messages are upstream's.
func verifyRunAsNonRoot(p *corev1.Pod, c *corev1.Container, img *runtimeapi.Image) error {
	sc := effectiveSecurityContext(p, c)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		return nil
	}
	if sc.RunAsUser != nil {
		if *sc.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", formatPod(p), c.Name)
		}
		return nil
	}
	var uid *int64
	username := ""
	if img != nil {
		if img.Uid != nil {
			uid = &img.Uid.Value
		} else {
			username = img.Username
		}
	}
	if uid == nil && username == "" {
		uid = new(int64)
	}
	switch {
	case uid != nil && *uid == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", formatPod(p), c.Name)
	case uid == nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", username, formatPod(p), c.Name)
	}
	return nil
}

// formatPod is upstream's format.Pod: name_namespace(uid).
func formatPod(p *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID)
}

// applyFSGroup gives the pod's fsGroup ownership of a writable volume, as
// upstream's SetVolumeOwnership: group fsGroup, group read-write, and the
// setgid bit on directories so that new files inherit the group.
func applyFSGroup(path string, gid int64) error {
	return filepath.WalkDir(path, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(f, -1, int(gid)); err != nil {
			return err
		}
		mode := info.Mode() | 0o060
		if d.IsDir() {
			mode |= os.ModeSetgid | 0o010
		}
		if mode != info.Mode() {
			return os.Chmod(f, mode)
		}
		return nil
	})
}

// seccompRoot is where Localhost seccomp profiles are looked up.
func (k *Kubelet) seccompRoot() string { return filepath.Join(k.cfg.DataDir, "agent", "seccomp") }

// sysctls are the pod's namespaced sysctls, set on its sandbox.
func sysctls(p *corev1.Pod) map[string]string {
	if p.Spec.SecurityContext == nil || len(p.Spec.SecurityContext.Sysctls) == 0 {
		return nil
	}
	m := make(map[string]string, len(p.Spec.SecurityContext.Sysctls))
	for _, s := range p.Spec.SecurityContext.Sysctls {
		m[s.Name] = s.Value
	}
	return m
}

// linuxContainerConfig is c's CRI Linux config: its resources and its
// security context.
func (k *Kubelet) linuxContainerConfig(p *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerConfig {
	return &runtimeapi.LinuxContainerConfig{
		Resources:       containerResources(qosClass(p), c, memTotal()),
		SecurityContext: containerSecurityContext(p, c, k.seccompRoot()),
	}
}
