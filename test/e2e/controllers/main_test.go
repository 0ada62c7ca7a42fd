// Package controllers_test checks controllers inside `skiff server` against
// objects created through the API. There is no kubelet: the tests create
// Node objects, keep their Leases fresh (so node lifecycle leaves them
// alone) and play the kubelet by writing pod status with UpdateStatus.
package controllers_test

import (
	"context"
	"os"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

var srv *framework.Server

func TestMain(m *testing.M) { os.Exit(framework.RunWithServer(m, &srv)) }

// heartbeat renews the node's Lease every 5 s, as a kubelet would, until
// the test (or, with t nil, the package) ends.
func heartbeat(t *testing.T, cs kubernetes.Interface, node string) {
	ctx := context.Background()
	if t != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		t.Cleanup(cancel)
	}
	go func() {
		for {
			now := metav1.NewMicroTime(time.Now())
			lease, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				secs := int32(40)
				lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &node, LeaseDurationSeconds: &secs, RenewTime: &now}}
				cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{})
			} else {
				lease.Spec.RenewTime = &now
				cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, lease, metav1.UpdateOptions{})
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
	}()
}
