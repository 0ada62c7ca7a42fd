package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Source is where the controller reads and writes the objects it keeps at
// their replica count: ReplicaSets, or (as upstream does for
// ReplicationControllers) another kind converted to and from ReplicaSets.
type Source interface {
	// Kind is the owner kind written into pods' controller references.
	Kind() schema.GroupVersionKind
	Informer() cache.SharedIndexInformer
	// Get and List read the informer cache.
	Get(ns, name string) (*appsv1.ReplicaSet, error)
	List(ns string) ([]*appsv1.ReplicaSet, error)
	// GetLive reads the API.
	GetLive(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error)
	UpdateStatus(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error)
	// Object is the API object rs stands for (events are reported on it).
	Object(rs *appsv1.ReplicaSet) runtime.Object
}

type replicaSets struct {
	client kubernetes.Interface
	inf    cache.SharedIndexInformer
	lister appslisters.ReplicaSetLister
}

// NewReplicaSets is the Source of apps/v1 ReplicaSets.
func NewReplicaSets(cc *controller.Context) Source {
	inf := cc.Informers.Apps().V1().ReplicaSets()
	return &replicaSets{client: cc.Client, inf: inf.Informer(), lister: inf.Lister()}
}

func (s *replicaSets) Kind() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
}

func (s *replicaSets) Informer() cache.SharedIndexInformer { return s.inf }

func (s *replicaSets) Get(ns, name string) (*appsv1.ReplicaSet, error) {
	return s.lister.ReplicaSets(ns).Get(name)
}

func (s *replicaSets) List(ns string) ([]*appsv1.ReplicaSet, error) {
	return s.lister.ReplicaSets(ns).List(labels.Everything())
}

func (s *replicaSets) GetLive(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error) {
	return s.client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s *replicaSets) UpdateStatus(ctx context.Context, rs *appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	return s.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
}

func (s *replicaSets) Object(rs *appsv1.ReplicaSet) runtime.Object { return rs }
