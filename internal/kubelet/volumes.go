package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// volumeResync is how often a pod with configMap, secret, downwardAPI or
// projected volumes is synced, so that updates reach its files (upstream
// resyncs every pod about once a minute).
const volumeResync = 15 * time.Second

// volume is one of a pod's volumes set up on the host.
type volume struct {
	path string
	// readOnly volumes (configMap, secret, downwardAPI, projected) are
	// mounted read-only whatever the volumeMount says, as upstream does.
	readOnly bool
	// contained volumes live under the pod dir: a subPath must stay in them.
	contained bool
}

// podDir is where a pod's emptyDir volumes live: <data-dir>/agent/pods/<uid>.
func (k *Kubelet) podDir(uid string) string {
	return filepath.Join(k.cfg.DataDir, "agent", "pods", uid)
}

// emptyDirPlugin names emptyDir volumes' directories, as upstream's kubelet.
const emptyDirPlugin = "kubernetes.io~empty-dir"

// volatileDir is where a pod's configMap, secret, downwardAPI and projected
// volumes and its containers' termination-message files live:
// Config.VolatileDir/<uid> (a tmpfs: secrets and tokens never reach the
// disk, as upstream's per-volume tmpfs mounts keep them off it, and a pod
// start allocates no disk inodes for them), else the pod dir.
func (k *Kubelet) volatileDir(uid string) string {
	if k.cfg.VolatileDir == "" {
		return k.podDir(uid)
	}
	return filepath.Join(k.cfg.VolatileDir, uid)
}

// volumeDir is the directory of a pod's volume of a kind (plugin, as
// volumePluginDir names it): emptyDirs in the pod dir, the others in
// volatileDir.
func (k *Kubelet) volumeDir(uid, plugin, name string) string {
	if plugin == emptyDirPlugin {
		return filepath.Join(k.podDir(uid), "volumes", plugin, name)
	}
	return k.volatilePath(uid, "volumes", plugin, name)
}

// volatilePath is a path under a pod's volatileDir, unless an agent from
// before Config.VolatileDir left it in the pod dir: the pod's running
// containers have that one mounted, so it stays in use (and is kept up to
// date) until the pod goes.
func (k *Kubelet) volatilePath(uid string, rel ...string) string {
	old := filepath.Join(append([]string{k.podDir(uid)}, rel...)...)
	if k.cfg.VolatileDir == "" {
		return old
	}
	if _, err := os.Lstat(old); err == nil {
		return old
	}
	return filepath.Join(append([]string{k.volatileDir(uid)}, rel...)...)
}

// needsResync reports whether a pod has volumes that follow API objects.
func needsResync(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil {
			return true
		}
	}
	return false
}

// setupVolumes creates (or refreshes) every volume of p; a failure names
// the volume as upstream's FailedMount does.
func (k *Kubelet) setupVolumes(ctx context.Context, p *corev1.Pod, o *objects, ec *envContext) (map[string]volume, error) {
	vols := make(map[string]volume, len(p.Spec.Volumes))
	for i := range p.Spec.Volumes {
		v := &p.Spec.Volumes[i]
		vol, err := k.setupVolume(ctx, p, v, o, ec)
		if err != nil {
			return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", v.Name, err)
		}
		vols[v.Name] = vol
	}
	return vols, nil
}

func (k *Kubelet) setupVolume(ctx context.Context, p *corev1.Pod, v *corev1.Volume, o *objects, ec *envContext) (volume, error) {
	dir := func(plugin string) string { return k.volumeDir(string(p.UID), plugin, v.Name) }
	var payload map[string]fileProjection
	var err error
	var path string
	switch {
	case v.EmptyDir != nil:
		path = dir(emptyDirPlugin)
		return volume{path: path, contained: true}, setupEmptyDir(path, v.EmptyDir, emptyDirMemorySize(p, v.EmptyDir, ec.allocatable))
	case v.HostPath != nil:
		return volume{path: v.HostPath.Path}, checkHostPath(v.HostPath)
	case v.PersistentVolumeClaim != nil:
		return claimVolume(ctx, o, v.PersistentVolumeClaim)
	case v.ConfigMap != nil:
		path = dir("kubernetes.io~configmap")
		payload, err = configMapPayload(ctx, o, &v.ConfigMap.LocalObjectReference, v.ConfigMap.Items, v.ConfigMap.Optional, modeOr(v.ConfigMap.DefaultMode))
	case v.Secret != nil:
		path = dir("kubernetes.io~secret")
		payload, err = secretPayload(ctx, o, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, modeOr(v.Secret.DefaultMode))
	case v.DownwardAPI != nil:
		path = dir("kubernetes.io~downward-api")
		payload, err = downwardPayload(ec, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode))
	case v.Projected != nil:
		path = dir("kubernetes.io~projected")
		payload, err = k.projectedPayload(ctx, o, ec, v.Projected)
	default:
		return volume{}, errors.New("volume type not supported by this kubelet yet")
	}
	if err != nil {
		return volume{}, err
	}
	if _, err := writeAtomic(path, payload, time.Now()); err != nil {
		return volume{}, err
	}
	return volume{path: path, readOnly: true, contained: true}, nil
}

func modeOr(m *int32) os.FileMode {
	if m == nil {
		return os.FileMode(corev1.ConfigMapVolumeSourceDefaultMode)
	}
	return os.FileMode(*m)
}

// setupEmptyDir makes a world-writable directory; medium Memory mounts a
// tmpfs of size bytes on it.
func setupEmptyDir(path string, src *corev1.EmptyDirVolumeSource, size int64) error {
	if err := os.MkdirAll(path, 0o777); err != nil {
		return err
	}
	if src.Medium == corev1.StorageMediumMemory && !isMountPoint(path) {
		opts := "mode=0777"
		if size > 0 {
			opts += fmt.Sprintf(",size=%d", size)
		}
		if err := syscall.Mount("tmpfs", path, "tmpfs", 0, opts); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", path, err)
		}
	}
	return os.Chmod(path, 0o777)
}

// emptyDirMemorySize is the size of a memory-backed emptyDir as upstream's
// calculateEmptyDirMemorySize makes it: the node's allocatable memory, or
// the pod's memory limit (the sum of its containers' limits) if smaller,
// or the volume's sizeLimit if smaller still. 0 leaves the kernel's
// default (half the RAM) when nothing is known.
func emptyDirMemorySize(p *corev1.Pod, src *corev1.EmptyDirVolumeSource, allocatable corev1.ResourceList) int64 {
	if src.Medium != corev1.StorageMediumMemory {
		return 0
	}
	size := allocatable.Memory().Value()
	smaller := func(v int64) {
		if v > 0 && (size <= 0 || v < size) {
			size = v
		}
	}
	lim, _ := podResources(&p.Spec, limitsOf, corev1.ResourceMemory)
	smaller(lim.Value())
	if src.SizeLimit != nil {
		smaller(src.SizeLimit.Value())
	}
	return size
}

func isMountPoint(path string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(path, &a) != nil || syscall.Stat(filepath.Dir(path), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// checkHostPath applies the hostPath type checks (and creations).
func checkHostPath(hp *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if hp.Type != nil {
		typ = *hp.Type
	}
	fi, statErr := os.Stat(hp.Path)
	switch typ {
	case corev1.HostPathDirectoryOrCreate:
		if os.IsNotExist(statErr) {
			return os.MkdirAll(hp.Path, 0o755)
		}
		if statErr == nil && !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
	case corev1.HostPathDirectory:
		if statErr != nil || !fi.IsDir() {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", hp.Path)
		}
	case corev1.HostPathFileOrCreate:
		if os.IsNotExist(statErr) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if statErr == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
	case corev1.HostPathFile:
		if statErr != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath type check failed: %s is not a file", hp.Path)
		}
	case corev1.HostPathSocket:
		if statErr != nil || fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", hp.Path)
		}
	case corev1.HostPathCharDev:
		if statErr != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", hp.Path)
		}
	case corev1.HostPathBlockDev:
		if statErr != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", hp.Path)
		}
	}
	return nil
}

// projectKeys maps keys to files: all keys under their own names, or only
// the items listed (each key must exist unless optional).
func projectKeys(data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode, optional bool, kind, ns, name string) (map[string]fileProjection, error) {
	out := map[string]fileProjection{}
	if len(items) == 0 {
		for k, b := range data {
			out[k] = fileProjection{data: b, mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("configured to use key %s in %s %s/%s, but it does not exist", it.Key, kind, ns, name)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = fileProjection{data: b, mode: m}
	}
	return out, nil
}

func configMapPayload(ctx context.Context, o *objects, ref *corev1.LocalObjectReference, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]fileProjection, error) {
	opt := optional != nil && *optional
	cm, err := o.configMap(ctx, ref.Name)
	if err != nil {
		if apierrors.IsNotFound(err) && opt {
			return map[string]fileProjection{}, nil
		}
		return nil, err
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return projectKeys(data, items, mode, opt, "ConfigMap", o.namespace, ref.Name)
}

func secretPayload(ctx context.Context, o *objects, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]fileProjection, error) {
	opt := optional != nil && *optional
	s, err := o.secret(ctx, name)
	if err != nil {
		if apierrors.IsNotFound(err) && opt {
			return map[string]fileProjection{}, nil
		}
		return nil, err
	}
	return projectKeys(s.Data, items, mode, opt, "Secret", o.namespace, name)
}

func downwardPayload(ec *envContext, items []corev1.DownwardAPIVolumeFile, mode os.FileMode) (map[string]fileProjection, error) {
	out := map[string]fileProjection{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = ec.fieldValue(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := &corev1.Container{Name: it.ResourceFieldRef.ContainerName}
			v, err = ec.resourceValue(it.ResourceFieldRef, c)
		}
		if err != nil {
			return nil, err
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = fileProjection{data: []byte(v), mode: m}
	}
	return out, nil
}

// projectedPayload merges the sources; a serviceAccountToken source is a
// token bound to the pod (tokens.go). clusterTrustBundle and
// podCertificate sources are not supported yet and are skipped.
func (k *Kubelet) projectedPayload(ctx context.Context, o *objects, ec *envContext, src *corev1.ProjectedVolumeSource) (map[string]fileProjection, error) {
	mode := modeOr(src.DefaultMode)
	out := map[string]fileProjection{}
	for _, s := range src.Sources {
		var part map[string]fileProjection
		var err error
		switch {
		case s.ConfigMap != nil:
			part, err = configMapPayload(ctx, o, &s.ConfigMap.LocalObjectReference, s.ConfigMap.Items, s.ConfigMap.Optional, mode)
		case s.Secret != nil:
			part, err = secretPayload(ctx, o, s.Secret.Name, s.Secret.Items, s.Secret.Optional, mode)
		case s.DownwardAPI != nil:
			part, err = downwardPayload(ec, s.DownwardAPI.Items, mode)
		case s.ServiceAccountToken != nil:
			var tok string
			tok, err = k.tokens.get(ctx, o.client, ec.pod, s.ServiceAccountToken, time.Now())
			part = map[string]fileProjection{s.ServiceAccountToken.Path: {data: []byte(tok), mode: mode}}
		}
		if err != nil {
			return nil, err
		}
		for k, v := range part {
			out[k] = v
		}
	}
	return out, nil
}

// containerMounts are c's volumeMounts as CRI bind mounts. A subPath is
// created in an emptyDir if missing and must stay inside its volume.
func containerMounts(c *corev1.Container, vols map[string]volume, env *envList) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", m.Name, c.Name)
		}
		host := v.path
		sub := m.SubPath
		if m.SubPathExpr != "" {
			sub = expand(m.SubPathExpr, env.mapping())
		}
		if sub != "" {
			if filepath.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") {
				return nil, fmt.Errorf("invalid subPath %q: must be a relative path without '..'", sub)
			}
			host = filepath.Join(v.path, sub)
			if _, err := os.Lstat(host); os.IsNotExist(err) && !v.readOnly {
				if err := os.MkdirAll(host, 0o777); err != nil {
					return nil, err
				}
			}
			real, err := filepath.EvalSymlinks(host)
			if err != nil {
				return nil, fmt.Errorf("subPath %q of volume %q: %w", sub, m.Name, err)
			}
			if root, err := filepath.EvalSymlinks(v.path); v.contained && (err != nil || (real != root && !strings.HasPrefix(real, root+"/"))) {
				return nil, fmt.Errorf("subPath %q of volume %q leaves the volume", sub, m.Name)
			}
			host = real
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: host, Readonly: m.ReadOnly || v.readOnly,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE})
	}
	return out, nil
}

// removePodDir unmounts a pod's memory-backed emptyDirs and removes its
// volumes and termination-message files; the containers must be gone.
func (k *Kubelet) removePodDir(uid string) {
	k.tokens.forget(uid)
	if k.objects != nil {
		k.objects.release(uid)
	}
	if k.cfg.VolatileDir != "" {
		dir := k.volatileDir(uid)
		if err := os.RemoveAll(dir); err != nil {
			k.log.Warn("remove pod files", "path", dir, "err", err)
		}
	}
	dir := k.podDir(uid)
	if _, err := os.Stat(dir); err != nil {
		return
	}
	tmpfs, _ := filepath.Glob(filepath.Join(dir, "volumes", emptyDirPlugin, "*"))
	for _, d := range tmpfs {
		if isMountPoint(d) {
			if err := syscall.Unmount(d, 0); err != nil {
				k.log.Warn("unmount emptyDir", "path", d, "err", err)
				return // never remove through a live mount
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		k.log.Warn("remove pod dir", "path", dir, "err", err)
	}
}

// claimVolume resolves a persistentVolumeClaim volume to the host path of
// its bound volume (hostPath, with its type checks and creation, or
// local). Until the claim is Bound the error keeps the pod in
// ContainerCreating and the pod is retried.
func claimVolume(ctx context.Context, o *objects, src *corev1.PersistentVolumeClaimVolumeSource) (volume, error) {
	pv, err := boundVolume(ctx, o.client, o.namespace, src.ClaimName)
	if err != nil {
		return volume{}, err
	}
	switch {
	case pv.Spec.HostPath != nil:
		return volume{path: pv.Spec.HostPath.Path, readOnly: src.ReadOnly}, checkHostPath(pv.Spec.HostPath)
	case pv.Spec.Local != nil:
		if fi, err := os.Stat(pv.Spec.Local.Path); err != nil {
			return volume{}, fmt.Errorf("local volume %s: %w", pv.Name, err)
		} else if !fi.IsDir() {
			return volume{}, fmt.Errorf("local volume %s: %s is not a directory", pv.Name, pv.Spec.Local.Path)
		}
		return volume{path: pv.Spec.Local.Path, readOnly: src.ReadOnly}, nil
	}
	return volume{}, fmt.Errorf("persistent volume %s: volume type not supported by this kubelet", pv.Name)
}

// boundVolume is the persistent volume a claim is bound to, both ways
// round (the claim names the volume, the volume's claimRef the claim's
// uid); a missing, terminating or unbound claim is an error naming it.
func boundVolume(ctx context.Context, client kubernetes.Interface, namespace, claimName string) (*corev1.PersistentVolume, error) {
	claim, err := client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claimName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("persistentvolumeclaim %q not found", claimName)
	}
	if err != nil {
		return nil, err
	}
	if claim.DeletionTimestamp != nil {
		return nil, fmt.Errorf("persistentvolumeclaim %q is being deleted", claimName)
	}
	if claim.Spec.VolumeName == "" || claim.Status.Phase != corev1.ClaimBound {
		return nil, fmt.Errorf("error processing PVC %s/%s: PVC is not bound", namespace, claimName)
	}
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get persistent volume %s: %w", claim.Spec.VolumeName, err)
	}
	if r := pv.Spec.ClaimRef; r == nil || r.UID != claim.UID {
		return nil, fmt.Errorf("persistent volume %s is not bound to claim %s/%s", pv.Name, namespace, claimName)
	}
	return pv, nil
}
