package history

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
)

// Owned returns the revisions owner controls, from a ControllerRevision
// index built by replicaset.AddControllerIndex, adopting orphans its
// selector matches and releasing owned ones it no longer matches.
// canAdopt re-reads the owner before the first adoption.
func Owned(ctx context.Context, cs kubernetes.Interface, idx cache.Indexer, owner metav1.Object, kind schema.GroupVersionKind,
	sel labels.Selector, canAdopt func(context.Context) error) ([]*appsv1.ControllerRevision, error) {
	candidates, err := replicaset.OwnedOrOrphans[*appsv1.ControllerRevision](idx, owner.GetNamespace(), owner.GetUID())
	if err != nil {
		return nil, err
	}
	cl := &controller.Claimer{
		Owner: owner, Kind: kind, Selector: sel, CanAdopt: canAdopt,
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := cs.AppsV1().ControllerRevisions(owner.GetNamespace()).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	var out []*appsv1.ControllerRevision
	for _, r := range candidates {
		ok, err := cl.Claim(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("claim revision %s: %w", r.Name, err)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}
