package scheduler

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/scheduler/plugins/volumebinding"
)

// watchVolumes gives the plugins claim, volume and class listers, and
// retries pods parked by volume binding when any of those change.
func (s *Scheduler) watchVolumes(factory informers.SharedInformerFactory) error {
	claims := factory.Core().V1().PersistentVolumeClaims()
	volumes := factory.Core().V1().PersistentVolumes()
	classes := factory.Storage().V1().StorageClasses()
	s.listers.Claims, s.listers.Volumes, s.listers.StorageClasses = claims.Lister(), volumes.Lister(), classes.Lister()
	wake := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.queue.WakeFor(volumebinding.Name) },
		UpdateFunc: func(any, any) { s.queue.WakeFor(volumebinding.Name) },
	}
	for _, inf := range []cache.SharedIndexInformer{claims.Informer(), volumes.Informer(), classes.Informer()} {
		if _, err := inf.AddEventHandler(wake); err != nil {
			return err
		}
	}
	return nil
}

// preBind runs the PreBind plugins for pod on host.
func (s *Scheduler) preBind(ctx context.Context, pod *corev1.Pod, host string) error {
	for _, pb := range s.preBinds {
		if st := pb.PreBind(ctx, s.cfg.Client, s.listers, pod, host); !st.IsSuccess() {
			return fmt.Errorf("running PreBind plugin %q: %v", pb.Name(), st.Reasons)
		}
	}
	return nil
}
