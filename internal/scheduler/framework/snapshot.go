package framework

import (
	"k8s.io/apimachinery/pkg/labels"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
)

// Listers are the informer caches, beyond nodes and pods, that plugins may
// read: namespaces (namespaceSelector in pod affinity terms) and the
// objects that own pods (the default topology spread selector). Any may be
// nil; plugins then do without.
type Listers struct {
	Namespaces             listerscorev1.NamespaceLister
	Services               listerscorev1.ServiceLister
	ReplicationControllers listerscorev1.ReplicationControllerLister
	ReplicaSets            listersappsv1.ReplicaSetLister
	StatefulSets           listersappsv1.StatefulSetLister
	// Claims, Volumes and StorageClasses serve volume binding.
	Claims         listerscorev1.PersistentVolumeClaimLister
	Volumes        listerscorev1.PersistentVolumeLister
	StorageClasses listersstoragev1.StorageClassLister
}

// Snapshot is the cluster as one scheduling cycle sees it: every node with
// its placed pods (assumed ones included), and how many placed pods carry
// pod affinity terms, so plugins can skip cluster-wide work when none do.
// It is valid only during the cycle and must not be modified.
type Snapshot struct {
	Nodes []*NodeInfo
	// PodsWithAffinity and PodsWithRequiredAntiAffinity count the entries
	// of the NodeInfo lists of the same names over all nodes.
	PodsWithAffinity             int
	PodsWithRequiredAntiAffinity int
	Listers                      Listers
}

// NewSnapshot builds a snapshot of nodes, counting their affinity pods
// (for tests and tools; the scheduler keeps the counts incrementally).
func NewSnapshot(nodes ...*NodeInfo) *Snapshot {
	s := &Snapshot{Nodes: nodes}
	for _, n := range nodes {
		s.PodsWithAffinity += len(n.PodsWithAffinity)
		s.PodsWithRequiredAntiAffinity += len(n.PodsWithRequiredAntiAffinity)
	}
	return s
}

// NamespaceLabels returns the labels of namespace ns (none when unknown).
func (s *Snapshot) NamespaceLabels(ns string) labels.Set {
	if s.Listers.Namespaces == nil {
		return nil
	}
	n, err := s.Listers.Namespaces.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}
