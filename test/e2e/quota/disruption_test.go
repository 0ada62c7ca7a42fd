package quota

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

func deployment(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, replicas int32) map[string]string {
	t.Helper()
	labels := map[string]string{"app": name}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return labels
}

func createPDB(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, labels map[string]string,
	minAvailable, maxUnavailable *intstr.IntOrString) {
	t.Helper()
	_, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: minAvailable, MaxUnavailable: maxUnavailable,
			Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitPDB waits for the budget's status to show healthy/desired/expected/allowed.
func waitPDB(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, healthy, desired, expected, allowed int32) *policyv1.PodDisruptionBudget {
	t.Helper()
	var out *policyv1.PodDisruptionBudget
	eventually(t, 90*time.Second, "PDB "+name+" status", func() (bool, error) {
		p, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := p.Status
		if st.ObservedGeneration != p.Generation || st.CurrentHealthy != healthy || st.DesiredHealthy != desired ||
			st.ExpectedPods != expected || st.DisruptionsAllowed != allowed {
			return false, errorf("status %+v", st)
		}
		out = p
		return true, nil
	})
	return out
}

// TestPDBEvictions: a budget over a 3-replica Deployment allows one
// disruption; the first eviction succeeds and the second gets 429 until
// the replacement is Ready.
func TestPDBEvictions(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "pdb")
	labels := deployment(t, ctx, cs, ns, "web", 3)
	one := intstr.FromInt32(1)
	createPDB(t, ctx, cs, ns, "web", labels, nil, &one)
	p := waitPDB(t, ctx, cs, ns, "web", 3, 2, 3, 1)
	c := meta.FindStatusCondition(p.Status.Conditions, policyv1.DisruptionAllowedCondition)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != policyv1.SufficientPodsReason {
		t.Fatalf("condition %+v, want DisruptionAllowed=True SufficientPods", c)
	}

	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("pods: %v %v", len(pods.Items), err)
	}
	evict := func(name string) error {
		return cs.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	}
	if err := evict(pods.Items[0].Name); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	err = evict(pods.Items[1].Name)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("second eviction: %v, want 429", err)
	}
	// The controller agrees: nothing more to spare while a pod is gone.
	p, err = cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.DisruptionsAllowed != 0 {
		t.Fatalf("disruptionsAllowed %d right after an eviction, want 0", p.Status.DisruptionsAllowed)
	}
	// The Deployment replaces the pod; the budget recovers.
	waitPDB(t, ctx, cs, ns, "web", 3, 2, 3, 1)
	if err := evict(pods.Items[1].Name); err != nil {
		t.Fatalf("eviction after recovery: %v", err)
	}
}

// TestPDBPercentOfScale: a percentage is of the Deployment's replicas, not
// of the pods that happen to exist; scaling the Deployment moves it.
func TestPDBPercentOfScale(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "pdb-percent")
	labels := deployment(t, ctx, cs, ns, "api", 4)
	half := intstr.FromString("50%")
	createPDB(t, ctx, cs, ns, "api", labels, &half, nil)
	waitPDB(t, ctx, cs, ns, "api", 4, 2, 4, 2)

	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	five := int32(5)
	d.Spec.Replicas = &five
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPDB(t, ctx, cs, ns, "api", 5, 3, 5, 2)
}
