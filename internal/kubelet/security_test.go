package kubelet

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerSecurityContext(t *testing.T) {
	u := func(v int64) *int64 { return &v }
	yes, no := true, false
	for _, tc := range []struct {
		name string
		pod  *corev1.PodSecurityContext
		c    *corev1.SecurityContext
		spec func(*corev1.PodSpec)
		want *runtimeapi.LinuxContainerSecurityContext
		// unmasked: procMount Unmasked, nothing masked or read-only;
		// every other case expects upstream's defaults.
		unmasked bool
	}{
		{name: "nothing: unconfined seccomp, pod namespaces",
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		{name: "pod user and groups, fsGroup first among the supplemental groups",
			pod: &corev1.PodSecurityContext{RunAsUser: u(1000), RunAsGroup: u(2000), FSGroup: u(3000), SupplementalGroups: []int64{4000}},
			want: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000},
				SupplementalGroups: []int64{3000, 4000}, Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		{name: "the container wins",
			pod: &corev1.PodSecurityContext{RunAsUser: u(1000), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
			c:   &corev1.SecurityContext{RunAsUser: u(5), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			want: &runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 5},
				Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}},
		{name: "container-only fields",
			c: &corev1.SecurityContext{Privileged: &yes, ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}},
			want: &runtimeapi.LinuxContainerSecurityContext{Privileged: true, ReadonlyRootfs: true, NoNewPrivs: true,
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
				Seccomp:      &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		{name: "allowPrivilegeEscalation true: no no_new_privs", c: &corev1.SecurityContext{AllowPrivilegeEscalation: &yes},
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		{name: "localhost seccomp under the root",
			pod:  &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptrTo("p.json")}},
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/root/seccomp/p.json"}}},
		{name: "host namespaces", spec: func(s *corev1.PodSpec) { s.HostNetwork, s.HostPID, s.HostIPC = true, true, true },
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE}}},
		{name: "shared process namespace", spec: func(s *corev1.PodSpec) { s.ShareProcessNamespace = &yes },
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}},
		{name: "procMount Unmasked", c: &corev1.SecurityContext{ProcMount: ptrTo(corev1.UnmaskedProcMount)}, unmasked: true,
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		{name: "procMount Default", c: &corev1.SecurityContext{ProcMount: ptrTo(corev1.DefaultProcMount)},
			want: &runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.unmasked {
				tc.want.MaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
					"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
				tc.want.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
			}
			p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.pod, Containers: []corev1.Container{{Name: "c", SecurityContext: tc.c}}}}
			if tc.spec != nil {
				tc.spec(&p.Spec)
			}
			if tc.want.NamespaceOptions == nil {
				tc.want.NamespaceOptions = &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
			}
			got := containerSecurityContext(p, &p.Spec.Containers[0], "/root/seccomp")
			if !proto.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
			// The sandbox has the same namespaces, and is privileged when a
			// container is.
			sb := sandboxSecurityContext(p, "/root/seccomp")
			if !proto.Equal(sb.NamespaceOptions, got.NamespaceOptions) || sb.Privileged != got.Privileged {
				t.Errorf("sandbox %v does not match container %v", sb, got)
			}
		})
	}
}

func TestVerifyRunAsNonRoot(t *testing.T) {
	u := func(v int64) *int64 { return &v }
	yes, no := true, false
	pod := func(psc *corev1.PodSecurityContext, csc *corev1.SecurityContext) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{Name: "main", SecurityContext: csc}}}}
		p.Name, p.Namespace, p.UID = "web", "default", "uid-1"
		return p
	}
	root := &runtimeapi.Image{}
	for _, tc := range []struct {
		name string
		p    *corev1.Pod
		img  *runtimeapi.Image
		want string
	}{
		{"not asked", pod(nil, nil), root, ""},
		{"asked false", pod(&corev1.PodSecurityContext{RunAsNonRoot: &no}, nil), root, ""},
		{"image without user runs as root", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil), root,
			`container has runAsNonRoot and image will run as root (pod: "web_default(uid-1)", container: main)`},
		{"image uid 0", pod(nil, &corev1.SecurityContext{RunAsNonRoot: &yes}), &runtimeapi.Image{Uid: &runtimeapi.Int64Value{}},
			`container has runAsNonRoot and image will run as root (pod: "web_default(uid-1)", container: main)`},
		{"image uid 1000", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil), &runtimeapi.Image{Uid: &runtimeapi.Int64Value{Value: 1000}}, ""},
		{"image user name", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}, nil), &runtimeapi.Image{Username: "nginx"},
			`container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: "web_default(uid-1)", container: main)`},
		{"runAsUser 0", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: u(0)}, nil), root,
			`container's runAsUser breaks non-root policy (pod: "web_default(uid-1)", container: main)`},
		{"runAsUser 1000 beats the image", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}, &corev1.SecurityContext{RunAsUser: u(1000)}), root, ""},
		{"the container turns it off", pod(&corev1.PodSecurityContext{RunAsNonRoot: &yes}, &corev1.SecurityContext{RunAsNonRoot: &no}), root, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyRunAsNonRoot(tc.p, &tc.p.Spec.Containers[0], tc.img)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestApplyFSGroup(t *testing.T) {
	dir := t.TempDir()
	if err := applyFSGroup(dir, 4242); err != nil {
		if strings.Contains(err.Error(), "operation not permitted") {
			t.Skip("needs root")
		}
		t.Fatal(err)
	}
	fi, err := statOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.gid != 4242 || fi.mode&0o2070 != 0o2070 {
		t.Errorf("dir gid %d mode %o, want 4242 and setgid g+rwx", fi.gid, fi.mode)
	}
}
