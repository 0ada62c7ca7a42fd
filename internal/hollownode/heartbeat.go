package hollownode

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncHeartbeat is one kubelet heartbeat for a node: renew its Lease when
// due, and post node status when the report period passed or the server's
// copy disagrees (Ready not True, e.g. set Unknown by a lifecycle
// controller). It always schedules the next heartbeat.
func (n *Nodes) syncHeartbeat(ctx context.Context, name string) error {
	nd := n.nodes[name]
	if nd == nil {
		return nil
	}
	defer n.hbQueue.AddAfter(name, n.timing.leaseRenew)
	if !nd.heartbeat.Load() {
		return nil
	}
	now := n.now()
	nd.mu.Lock()
	renewDue := now.Sub(nd.lastRenew) >= n.timing.leaseRenew*3/4
	reportDue := now.Sub(nd.lastReport) >= n.timing.statusReport
	nd.mu.Unlock()
	if renewDue {
		if err := n.renewLease(ctx, nd); err != nil {
			return err
		}
	}
	cur, err := n.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		// Deleted under us: register again, as the kubelet does.
		return n.register(ctx, nd)
	}
	if err != nil {
		return err
	}
	if !reportDue && readyTrue(cur) && len(cur.Status.Conditions) >= len(nodeConditions) {
		return nil
	}
	err = n.postStatus(ctx, nd, cur)
	if apierrors.IsConflict(err) {
		// The informer's copy is stale; the next try reads a fresh one.
		if latest, gerr := n.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); gerr == nil {
			err = n.postStatus(ctx, nd, latest)
		}
	}
	return err
}

// renewLease sets the node Lease's renewTime to now, creating the Lease if
// it is missing. It reuses the Lease it last wrote, as the kubelet does, and
// reads the server's copy only after a conflict.
func (n *Nodes) renewLease(ctx context.Context, nd *node) error {
	leases := n.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	nd.mu.Lock()
	lease, uid := nd.lease, nd.uid
	nd.mu.Unlock()
	now := n.now()
	write := func(l *coordinationv1.Lease, create bool) (*coordinationv1.Lease, error) {
		l = l.DeepCopy()
		l.Spec.HolderIdentity = ptrTo(nd.name)
		l.Spec.LeaseDurationSeconds = ptrTo[int32](leaseDurationSeconds)
		l.Spec.RenewTime = &metav1.MicroTime{Time: now}
		if uid != "" {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: nd.name, UID: uid}}
		}
		if create {
			return leases.Create(ctx, l, metav1.CreateOptions{})
		}
		return leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	var got *coordinationv1.Lease
	var err error
	if lease != nil {
		got, err = write(lease, false)
	}
	if lease == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		lease, err = leases.Get(ctx, nd.name, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if create {
			lease, err = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: nd.name, Namespace: corev1.NamespaceNodeLease}}, nil
		}
		if err == nil {
			got, err = write(lease, create)
		}
	}
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", nd.name, err)
	}
	nd.mu.Lock()
	nd.lease, nd.lastRenew = got, now
	nd.mu.Unlock()
	return nil
}

func ptrTo[T any](v T) *T { return &v }
