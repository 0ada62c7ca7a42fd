package apiserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Names of upstream's ServiceAccount admission plugin.
const (
	// AdmissionServiceAccount is the plugin's name for
	// --disable-admission-plugins.
	AdmissionServiceAccount = "ServiceAccount"
	defaultServiceAccount   = "default"
	// ServiceAccountMountPath is where containers find token, ca.crt and
	// namespace.
	ServiceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	apiAccessVolumePrefix   = "kube-api-access-"
	// RootCAConfigMap is published in every namespace by the
	// root-ca-cert-publisher controller.
	RootCAConfigMap = "kube-root-ca.crt"
	// apiAccessTokenSeconds is the projected token's requested lifetime
	// (upstream's 3607: an hour and a tell-tale 7 s).
	apiAccessTokenSeconds int64 = 3607
	mirrorPodAnnotation         = "kubernetes.io/config.mirror"
)

// defaultSAAttempts and defaultSAWait: the default service account is
// created by a controller just after its namespace, so a pod naming it is
// given about a second for it to appear, as upstream's plugin does.
const (
	defaultSAAttempts = 10
	defaultSAWait     = 100 * time.Millisecond
)

// admitServiceAccount is upstream's ServiceAccount admission for a new
// pod: default spec.serviceAccountName, require the account to exist
// (403 otherwise) and, unless automounting is off on the pod or the
// account, add the kube-api-access-* projected volume mounted read-only
// in every container at ServiceAccountMountPath. Mirror pods are left
// alone.
func (s *Server) admitServiceAccount(ctx context.Context, pod *corev1.Pod) error {
	if s.cfg.DisabledAdmission[AdmissionServiceAccount] || s.cfg.ServiceAccountIssuer == nil {
		return nil
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = defaultServiceAccount
	}
	//nolint:staticcheck // the deprecated alias is kept in step, as upstream's defaulting does.
	pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
	sa, err := s.serviceAccountForPod(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		if _, ok := err.(namespaceError); ok {
			return err.(namespaceError).error
		}
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err))
	}
	if automount(sa, pod) {
		mountAPIAccess(pod, generateName(apiAccessVolumePrefix))
	}
	return nil
}

// serviceAccountForPod reads the account from the watch cache, then from
// etcd, retrying for a while when it is the default one.
func (s *Server) serviceAccountForPod(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	res := s.resources[corev1.SchemeGroupVersion.WithResource("serviceaccounts")]
	if res == nil {
		return nil, apierrors.NewNotFound(corev1.Resource("serviceaccount"), name)
	}
	sa := &corev1.ServiceAccount{}
	err := res.store.Get(ctx, res.key(namespace, name), storage.GetOptions{ResourceVersion: "0"}, sa)
	if err == nil {
		return sa, nil
	}
	if !storage.IsNotFound(err) {
		return nil, err
	}
	// A missing or terminating namespace is the better answer (upstream's
	// NamespaceLifecycle runs first), and is not worth waiting for.
	if err := s.checkNamespace(ctx, s.resources[corev1.SchemeGroupVersion.WithResource("pods")], namespace); err != nil {
		return nil, namespaceError{err}
	}
	attempts := 1
	if name == defaultServiceAccount {
		attempts = defaultSAAttempts
	}
	wait := defaultSAWait + time.Duration(rand.Int64N(int64(defaultSAWait)))
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		err = res.store.Get(ctx, res.key(namespace, name), storage.GetOptions{}, sa)
		if err == nil {
			return sa, nil
		}
		if !storage.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, apierrors.NewNotFound(corev1.Resource("serviceaccount"), name)
}

// namespaceError carries the namespace check's own API error.
type namespaceError struct{ error }

// automount: the pod's setting wins, then the account's, then true.
func automount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountAPIAccess adds the API access volume (named volumeName unless the
// pod has a kube-api-access-* volume already) and mounts it in every
// container and init container that mounts nothing at
// ServiceAccountMountPath.
func mountAPIAccess(pod *corev1.Pod, volumeName string) {
	hasVolume := false
	for _, v := range pod.Spec.Volumes {
		if len(v.Name) > len(apiAccessVolumePrefix) && v.Name[:len(apiAccessVolumePrefix)] == apiAccessVolumePrefix {
			volumeName, hasVolume = v.Name, true
			break
		}
	}
	mount := corev1.VolumeMount{Name: volumeName, ReadOnly: true, MountPath: ServiceAccountMountPath}
	needed := false
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			c := &list[i]
			mounted := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == ServiceAccountMountPath {
					mounted = true
					break
				}
			}
			if !mounted {
				c.VolumeMounts = append(c.VolumeMounts, mount)
				needed = true
			}
		}
	}
	if needed && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, apiAccessVolume(volumeName))
	}
}

// apiAccessVolume is the projected volume upstream's plugin adds: a bound
// token, the cluster CA and the namespace.
func apiAccessVolume(name string) corev1.Volume {
	mode := corev1.ProjectedVolumeSourceDefaultMode
	secs := apiAccessTokenSeconds
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode,
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: &secs}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: RootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}
