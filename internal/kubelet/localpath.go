package kubelet

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller/localpath"
)

// localPathDir is where this node's local-path volumes live; the node
// publishes it in the localpath.DirAnnotation.
func (k *Kubelet) localPathDir() string { return filepath.Join(k.cfg.DataDir, "storage") }

// cleanLocalPath removes the directories of this node's local-path volumes
// once they are deleted (the persistentvolume controller deletes them on
// Delete reclaim) and then lifts their finalizer, so a volume's object
// outlives its data only while the node is away. A resync retries
// failures.
func (k *Kubelet) cleanLocalPath(ctx context.Context) {
	k.publishLocalPathDir(ctx)
	factory := informers.NewSharedInformerFactory(k.cfg.Client, 30*time.Second)
	inf := factory.Core().V1().PersistentVolumes().Informer()
	handle := func(obj any) {
		if pv, ok := obj.(*corev1.PersistentVolume); ok {
			k.cleanVolume(ctx, pv)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }}); err != nil {
		k.log.Warn("local-path cleaner", "err", err)
		return
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
}

func (k *Kubelet) cleanVolume(ctx context.Context, pv *corev1.PersistentVolume) {
	if pv.DeletionTimestamp == nil || !slices.Contains(pv.Finalizers, localpath.Finalizer) ||
		pv.Annotations["local.path.provisioner/selected-node"] != k.cfg.NodeName {
		return
	}
	// A volume provisioned before the node published its directory
	// lives in the default one.
	dir, ok := localpath.OwnedDir(pv, k.localPathDir())
	if !ok {
		if dir, ok = localpath.OwnedDir(pv, localpath.DefaultDir); !ok {
			return
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		k.log.Warn("remove local-path volume", "volume", pv.Name, "dir", dir, "err", err)
		return
	}
	cp := pv.DeepCopy()
	cp.Finalizers = slices.DeleteFunc(cp.Finalizers, func(f string) bool { return f == localpath.Finalizer })
	_, err := k.cfg.Client.CoreV1().PersistentVolumes().Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		k.log.Warn("release local-path volume", "volume", pv.Name, "err", err)
		return
	}
	k.log.Info("removed local-path volume", "volume", pv.Name, "dir", dir)
}

// publishLocalPathDir sets the node's local-path directory annotation on a
// Node registered before (nodeObject sets it on new ones).
func (k *Kubelet) publishLocalPathDir(ctx context.Context) {
	nd, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil || nd.Annotations[localpath.DirAnnotation] == k.localPathDir() {
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{localpath.DirAnnotation: k.localPathDir()}}})
	if _, err := k.cfg.Client.CoreV1().Nodes().Patch(ctx, k.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		k.log.Warn("publish local-path directory", "err", err)
	}
}
