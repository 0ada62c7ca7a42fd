package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// readVolume reads a volume's files through ..data, and checks that each
// top-level name is visible.
func readVolume(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	data := filepath.Join(dir, "..data") + "/"
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		b, _ := os.ReadFile(path)
		rel, _ := filepath.Rel(data, path)
		if _, err := os.Stat(filepath.Join(dir, rel)); err != nil {
			t.Errorf("%s not visible: %v", rel, err)
		}
		out[rel] = string(b) + "|" + fi.Mode().Perm().String()
		return nil
	})
	return out
}

func TestWriteAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	steps := []struct {
		payload map[string]fileProjection
		changed bool
		want    map[string]string
	}{
		{payload: map[string]fileProjection{"a": {[]byte("1"), 0o644}, "d/b": {[]byte("2"), 0o400}}, changed: true,
			want: map[string]string{"a": "1|-rw-r--r--", "d/b": "2|-r--------"}},
		{payload: map[string]fileProjection{"a": {[]byte("1"), 0o644}, "d/b": {[]byte("2"), 0o400}}, changed: false,
			want: map[string]string{"a": "1|-rw-r--r--", "d/b": "2|-r--------"}},
		{payload: map[string]fileProjection{"a": {[]byte("new"), 0o644}, "c": {[]byte("3"), 0o644}}, changed: true,
			want: map[string]string{"a": "new|-rw-r--r--", "c": "3|-rw-r--r--"}},
		{payload: map[string]fileProjection{}, changed: true, want: map[string]string{}},
	}
	for i, s := range steps {
		now = now.Add(time.Second)
		changed, err := writeAtomic(dir, s.payload, now)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if changed != s.changed {
			t.Errorf("step %d: changed %v, want %v", i, changed, s.changed)
		}
		got := readVolume(t, dir)
		if len(got) != len(s.want) {
			t.Errorf("step %d: files %v, want %v", i, got, s.want)
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Errorf("step %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
		// The visible names are links into ..data, which links to exactly
		// one hidden payload dir.
		target, err := os.Readlink(filepath.Join(dir, "..data"))
		if err != nil || !strings.HasPrefix(target, "..2026_11_30_03_00_") {
			t.Errorf("step %d: ..data → %q, %v", i, target, err)
		}
		hidden, _ := filepath.Glob(filepath.Join(dir, "..2*"))
		if len(hidden) != 1 {
			t.Errorf("step %d: payload dirs %v, want one", i, hidden)
		}
		if len(s.payload) > 0 {
			if l, err := os.Readlink(filepath.Join(dir, "a")); err != nil || l != "..data/a" {
				t.Errorf("step %d: a → %q, %v", i, l, err)
			}
		}
	}
	for _, bad := range []string{"/abs", "../x", "a/../../x", "..hidden", ""} {
		if _, err := writeAtomic(dir, map[string]fileProjection{bad: {}}, now); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestSetupVolumes(t *testing.T) {
	mode := int32(0o600)
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"k1": "v1", "k2": "v2"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "default"}, Data: map[string][]byte{"pw": []byte("s3cr3t")}},
	)
	k := testKubelet()
	k.cfg.DataDir = t.TempDir()
	// The agent's containerd state tmpfs in the product.
	k.cfg.VolatileDir = t.TempDir()
	k.cfg.Client = client
	hostDir := filepath.Join(t.TempDir(), "made")
	dirOrCreate, fileType := corev1.HostPathDirectoryOrCreate, corev1.HostPathFile
	p := makePod(corev1.RestartPolicyAlways, "a")
	p.Labels = map[string]string{"app": "web", "tier": "x\"y"}
	p.Spec.Volumes = []corev1.Volume{
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, DefaultMode: &mode}}},
		{Name: "cm-items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Items: []corev1.KeyToPath{{Key: "k2", Path: "sub/two"}}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
		{Name: "dapi", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
		{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Items: []corev1.KeyToPath{{Key: "k1", Path: "one"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &dirOrCreate}}},
	}
	ec := &envContext{pod: p, nodeName: "n1"}
	vols, err := k.setupVolumes(context.Background(), p, newObjects(client, "default"), ec)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]map[string]string{
		"cm":       {"k1": "v1|-rw-------", "k2": "v2|-rw-------"},
		"cm-items": {"sub/two": "v2|-rw-r--r--"},
		"sec":      {"pw": "s3cr3t|-rw-r--r--"},
		"dapi":     {"name": "p|-rw-r--r--", "labels": "app=\"web\"\ntier=\"x\\\"y\"|-rw-r--r--"},
		"proj":     {"one": "v1|-rw-r--r--", "pw": "s3cr3t|-rw-r--r--", "ns": "default|-rw-r--r--"},
	} {
		got := readVolume(t, vols[name].path)
		if len(got) != len(want) {
			t.Errorf("volume %s: %v, want %v", name, got, want)
		}
		for f, v := range want {
			if got[f] != v {
				t.Errorf("volume %s: %s = %q, want %q", name, f, got[f], v)
			}
		}
		// API-object volumes in the volatile dir, off the disk.
		if !vols[name].readOnly || !strings.HasPrefix(vols[name].path, filepath.Join(k.cfg.VolatileDir, "u1")+"/") {
			t.Errorf("volume %s: %+v", name, vols[name])
		}
	}
	if fi, err := os.Stat(hostDir); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate: %v", err)
	}
	if fi, err := os.Stat(vols["scratch"].path); err != nil || fi.Mode().Perm() != 0o777 || !strings.HasPrefix(vols["scratch"].path, k.podDir("u1")+"/") {
		t.Errorf("emptyDir %s: %v %v", vols["scratch"].path, fi, err)
	}

	// Mounts: subPath inside the volume, read-only forced for config maps.
	c := &corev1.Container{Name: "a", VolumeMounts: []corev1.VolumeMount{
		{Name: "cm", MountPath: "/etc/cm"},
		{Name: "cm", MountPath: "/etc/k1", SubPath: "k1"},
		{Name: "scratch", MountPath: "/data", SubPath: "x/y"},
		{Name: "host", MountPath: "/host", ReadOnly: true},
	}}
	mounts, err := containerMounts(c, vols, &envList{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 4 || !mounts[0].Readonly || !mounts[1].Readonly || mounts[2].Readonly || !mounts[3].Readonly ||
		!strings.Contains(mounts[1].HostPath, "/..2") || !strings.HasSuffix(mounts[2].HostPath, "scratch/x/y") {
		t.Errorf("mounts %v", mounts)
	}
	for _, bad := range []string{"../x", "/etc"} {
		c := &corev1.Container{Name: "a", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/d", SubPath: bad}}}
		if _, err := containerMounts(c, vols, &envList{}); err == nil {
			t.Errorf("subPath %q accepted", bad)
		}
	}

	// Missing objects and failing type checks name the volume.
	for _, v := range []corev1.Volume{
		{Name: "gone", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}}},
		{Name: "file", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &fileType}}},
		{Name: "item", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", Items: []corev1.KeyToPath{{Key: "x", Path: "x"}}}}},
	} {
		q := p.DeepCopy()
		q.Spec.Volumes = []corev1.Volume{v}
		_, err := k.setupVolumes(context.Background(), q, newObjects(client, "default"), ec)
		if err == nil || !strings.HasPrefix(err.Error(), `MountVolume.SetUp failed for volume "`+v.Name+`"`) {
			t.Errorf("volume %s: err %v", v.Name, err)
		}
	}
	opt := true
	q := p.DeepCopy()
	q.Spec.Volumes = []corev1.Volume{{Name: "opt", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: &opt}}}}
	if _, err := k.setupVolumes(context.Background(), q, newObjects(client, "default"), ec); err != nil {
		t.Errorf("optional missing config map: %v", err)
	}

	k.removePodDir("u1")
	if _, err := os.Stat(k.podDir("u1")); !os.IsNotExist(err) {
		t.Errorf("pod dir after removal: %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.cfg.VolatileDir, "u1")); !os.IsNotExist(err) {
		t.Errorf("pod's volatile dir after removal: %v", err)
	}
}

func TestProbeState(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     probeKind
		success  int32
		failure  int32
		results  string // o = success, x = failure
		want     string // result after each observation
		changeAt string // c where the result changed
	}{
		{name: "readiness starts failing, one success flips", kind: readiness, success: 1, failure: 3, results: "xoxxxo", want: "xoooxo", changeAt: ".c..cc"},
		{name: "liveness needs failureThreshold failures", kind: liveness, success: 1, failure: 3, results: "xxoxxx", want: "ooooox", changeAt: ".....c"},
		{name: "successThreshold 2", kind: readiness, success: 2, failure: 1, results: "oxooo", want: "xxxoo", changeAt: "...c."},
		{name: "startup", kind: startup, success: 1, failure: 2, results: "xo", want: "xo", changeAt: ".c"},
		{name: "zero thresholds count as one", kind: liveness, results: "xo", want: "xo", changeAt: "cc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newProbeState(tc.kind, &corev1.Probe{SuccessThreshold: tc.success, FailureThreshold: tc.failure})
			for i, r := range tc.results {
				changed := s.observe(r == 'o')
				if got := map[bool]byte{true: 'o', false: 'x'}[s.result]; got != tc.want[i] {
					t.Errorf("after %d: result %c, want %c", i, got, tc.want[i])
				}
				if changed != (tc.changeAt[i] == 'c') {
					t.Errorf("after %d: changed %v", i, changed)
				}
			}
		})
	}
}

func TestEmptyDirMemorySize(t *testing.T) {
	alloc := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")}
	mem := func(lim string) corev1.Container {
		c := corev1.Container{}
		if lim != "" {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(lim)}
		}
		return c
	}
	size := func(s string) *resource.Quantity { q := resource.MustParse(s); return &q }
	for _, tc := range []struct {
		name       string
		containers []corev1.Container
		src        corev1.EmptyDirVolumeSource
		want       int64
	}{
		{"disk", []corev1.Container{mem("")}, corev1.EmptyDirVolumeSource{}, 0},
		{"allocatable", []corev1.Container{mem("")}, corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}, 8 << 30},
		{"pod limit", []corev1.Container{mem("64Mi"), mem("32Mi")}, corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}, 96 << 20},
		{"sizeLimit", []corev1.Container{mem("64Mi")}, corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: size("16Mi")}, 16 << 20},
		{"sizeLimit above pod limit", []corev1.Container{mem("64Mi")}, corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: size("1Gi")}, 64 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: corev1.PodSpec{Containers: tc.containers}}
			if got := emptyDirMemorySize(p, &tc.src, alloc); got != tc.want {
				t.Errorf("size = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestVolatilePathKeepsOldLayout: a pod started by an agent from before
// Config.VolatileDir has its config map volume and termination-message
// file in the pod dir, mounted into its running containers; they stay in
// use there, while what is new goes to the volatile dir.
func TestVolatilePathKeepsOldLayout(t *testing.T) {
	client := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"k": "new"}})
	k := testKubelet()
	k.cfg.DataDir = t.TempDir()
	k.cfg.VolatileDir = t.TempDir()
	k.cfg.Client = client
	oldVol := filepath.Join(k.podDir("u1"), "volumes", "kubernetes.io~configmap", "old")
	oldTerm := filepath.Join(k.podDir("u1"), "containers", "a", "0")
	for _, d := range []string{oldVol, filepath.Dir(oldTerm)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(oldTerm, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	p := makePod(corev1.RestartPolicyAlways, "a")
	for _, name := range []string{"old", "new"} {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}})
	}
	vols, err := k.setupVolumes(context.Background(), p, newObjects(client, "default"), &envContext{pod: p, nodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if vols["old"].path != oldVol || readVolume(t, oldVol)["k"] != "new|-rw-r--r--" {
		t.Errorf("old volume at %s (%v), want it kept up to date at %s", vols["old"].path, readVolume(t, oldVol), oldVol)
	}
	if !strings.HasPrefix(vols["new"].path, filepath.Join(k.cfg.VolatileDir, "u1")+"/") {
		t.Errorf("new volume at %s, want it in the volatile dir", vols["new"].path)
	}
	if got := k.terminationLogPath("u1", "a", 0); got != oldTerm {
		t.Errorf("old container's termination file %s, want %s", got, oldTerm)
	}
	if got := k.terminationLogPath("u1", "a", 1); !strings.HasPrefix(got, filepath.Join(k.cfg.VolatileDir, "u1")+"/") {
		t.Errorf("new attempt's termination file %s, want it in the volatile dir", got)
	}
	k.removePodDir("u1")
	for _, d := range []string{k.podDir("u1"), filepath.Join(k.cfg.VolatileDir, "u1")} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s after removal: %v", d, err)
		}
	}
}
