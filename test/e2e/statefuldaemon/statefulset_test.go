package statefuldaemon

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/test/e2e/framework"
)

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
			}},
		},
	}
}

// podLog records, from a pod watch, the order pods were added and deleted
// and which pods were Ready when each was added.
type podLog struct {
	mu       sync.Mutex
	added    []string
	deleted  []string
	ready    map[string]bool
	readyAt  map[string][]string // pod → pods Ready when it was added
	stopOnce sync.Once
	w        watch.Interface
}

func watchPods(t *testing.T, w watch.Interface) *podLog {
	l := &podLog{ready: map[string]bool{}, readyAt: map[string][]string{}, w: w}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			l.mu.Lock()
			switch ev.Type {
			case watch.Added:
				l.added = append(l.added, p.Name)
				var r []string
				for n, ok := range l.ready {
					if ok {
						r = append(r, n)
					}
				}
				l.readyAt[p.Name] = r
				l.ready[p.Name] = controller.IsPodReady(p)
			case watch.Modified:
				l.ready[p.Name] = controller.IsPodReady(p) && p.DeletionTimestamp == nil
				if p.DeletionTimestamp != nil && !contains(l.deleted, p.Name+"@"+string(p.UID)) {
					l.deleted = append(l.deleted, p.Name+"@"+string(p.UID))
				}
			case watch.Deleted:
				delete(l.ready, p.Name)
				if !contains(l.deleted, p.Name+"@"+string(p.UID)) {
					l.deleted = append(l.deleted, p.Name+"@"+string(p.UID))
				}
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return l
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (l *podLog) deletions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, d := range l.deleted {
		out = append(out, strings.SplitN(d, "@", 2)[0])
	}
	return out
}

func (l *podLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.added, l.deleted = nil, nil
}

// TestStatefulSet: pods come up in ordinal order, each after the previous
// is Ready, with their claims; a partitioned rolling update replaces only
// the ordinals at or above the partition, highest first; kubectl follows
// the rollout and lists the history; scale-down removes the highest
// ordinals first and keeps the claims.
func TestStatefulSet(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "sts")
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	log := watchPods(t, w)
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, statefulSet("web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := k.Run("-n", ns, "rollout", "status", "statefulset/web", "--timeout=60s")
	// Partition defaults to 0, so kubectl reports a partitioned rollout.
	if r.Err != nil || !strings.Contains(r.Stdout, "roll out complete: 3 new pods") {
		dump(t, ns)
		t.Fatalf("rollout status: %v %s %s", r.Err, r.Stdout, r.Stderr)
	}

	log.mu.Lock()
	added := append([]string(nil), log.added...)
	readyAt := log.readyAt
	log.mu.Unlock()
	if fmt.Sprint(added) != "[web-0 web-1 web-2]" {
		t.Fatalf("pods added in order %v, want web-0 web-1 web-2", added)
	}
	for i := 1; i < 3; i++ {
		prev := fmt.Sprintf("web-%d", i-1)
		if !contains(readyAt[added[i]], prev) {
			t.Errorf("%s created while %s was not Ready (ready: %v)", added[i], prev, readyAt[added[i]])
		}
	}
	var created []time.Time
	for i := 0; i < 3; i++ {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("web-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, p.CreationTimestamp.Time)
		if p.Spec.Hostname != p.Name || p.Spec.Subdomain != "web" || p.Labels[appsv1.StatefulSetPodNameLabel] != p.Name ||
			p.Labels[appsv1.PodIndexLabel] != fmt.Sprint(i) || p.Labels[appsv1.StatefulSetRevisionLabel] == "" {
			t.Errorf("%s identity: hostname %q subdomain %q labels %v", p.Name, p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
		}
		claim := fmt.Sprintf("data-web-%d", i)
		if len(p.Spec.Volumes) == 0 || p.Spec.Volumes[0].PersistentVolumeClaim == nil || p.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != claim {
			t.Errorf("%s volumes %+v, want claim %s", p.Name, p.Spec.Volumes, claim)
		}
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("claim %s: %v", claim, err)
		}
		if pvc.CreationTimestamp.After(p.CreationTimestamp.Time) {
			t.Errorf("claim %s created after its pod", claim)
		}
	}
	for i := 1; i < 3; i++ {
		if created[i].Before(created[i-1]) {
			t.Errorf("creation timestamps out of order: %v", created)
		}
	}
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldRev := sts.Status.CurrentRevision
	if st := sts.Status; st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 ||
		st.UpdatedReplicas != 3 || oldRev == "" || st.UpdateRevision != oldRev || st.ObservedGeneration != sts.Generation {
		t.Fatalf("status %+v", st)
	}

	// Partitioned rolling update: only web-1 and web-2 move, web-2 first.
	log.reset()
	k.MustRun("-n", ns, "patch", "statefulset/web", "--type=merge", "-p",
		`{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}},"template":{"spec":{"containers":[{"name":"c","image":"nginx:2"}]}}}}`)
	out := k.MustRun("-n", ns, "rollout", "status", "statefulset/web", "--timeout=60s")
	if !strings.Contains(out, "partitioned roll out complete: 2 new pods have been updated") {
		t.Fatalf("rollout status: %s", out)
	}
	if d := log.deletions(); fmt.Sprint(d) != "[web-2 web-1]" {
		t.Fatalf("pods replaced %v, want web-2 then web-1", d)
	}
	sts, _ = cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
	newRev := sts.Status.UpdateRevision
	if newRev == oldRev || sts.Status.CurrentRevision != oldRev || sts.Status.UpdatedReplicas != 2 || sts.Status.CurrentReplicas != 1 {
		t.Fatalf("status after partitioned update %+v", sts.Status)
	}
	for i, want := range []string{oldRev, newRev, newRev} {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, fmt.Sprintf("web-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Labels[appsv1.StatefulSetRevisionLabel]; got != want {
			t.Errorf("web-%d at revision %s, want %s", i, got, want)
		}
	}
	hist := k.MustRun("-n", ns, "rollout", "history", "statefulset/web")
	if !strings.Contains(hist, "REVISION") || !strings.Contains(hist, "1 ") || !strings.Contains(hist, "2 ") {
		t.Fatalf("rollout history:\n%s", hist)
	}
	rev2 := k.MustRun("-n", ns, "rollout", "history", "statefulset/web", "--revision=2")
	if !strings.Contains(rev2, "nginx:2") {
		t.Fatalf("revision 2:\n%s", rev2)
	}

	// Scale down: web-2 goes first, then web-1; the claims stay.
	log.reset()
	k.MustRun("-n", ns, "scale", "statefulset/web", "--replicas=1")
	eventually(t, 60*time.Second, "one replica", func() (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		s, err2 := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && err2 == nil && len(pods.Items) == 1 && pods.Items[0].Name == "web-0" && s.Status.Replicas == 1, err
	})
	if d := log.deletions(); fmt.Sprint(d) != "[web-2 web-1]" {
		t.Fatalf("scale-down deleted %v, want web-2 then web-1", d)
	}
	pvcs, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pvcs.Items) != 3 {
		t.Fatalf("claims after scale-down: %v %v", len(pvcs.Items), err)
	}

	// Undo to revision 1: the template comes back and revision 1 becomes 3.
	k.MustRun("-n", ns, "rollout", "undo", "statefulset/web", "--to-revision=1")
	defer func() {
		if t.Failed() {
			dump(t, ns)
			t.Log(k.Run("-n", ns, "get", "sts", "web", "-o", "yaml").Stdout)
		}
	}()
	eventually(t, 30*time.Second, "the undo observed", func() (bool, error) {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && s.Spec.Template.Spec.Containers[0].Image == "nginx:1" && s.Status.ObservedGeneration == s.Generation &&
			s.Status.UpdateRevision == oldRev, err
	})
	cr, err := cs.AppsV1().ControllerRevisions(ns).Get(ctx, oldRev, metav1.GetOptions{})
	if err != nil || cr.Revision != 3 {
		t.Fatalf("revision %s after undo: %v %v, want number 3", oldRev, cr.Revision, err)
	}
}

// TestReplicationController: the ReplicaSet controller runs core/v1
// ReplicationControllers.
func TestReplicationController(t *testing.T) {
	ctx, cs := setup(t)
	ns := namespace(t, ctx, cs, "rc")
	replicas := int32(2)
	labels := map[string]string{"app": "old"}
	_, err := cs.CoreV1().ReplicationControllers(ns).Create(ctx, &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "old"},
		Spec: corev1.ReplicationControllerSpec{Replicas: &replicas, Selector: labels, Template: &corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "2 ready replicas", func() (bool, error) {
		rc, err := cs.CoreV1().ReplicationControllers(ns).Get(ctx, "old", metav1.GetOptions{})
		return err == nil && rc.Status.ReadyReplicas == 2 && rc.Status.Replicas == 2, err
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "ReplicationController" || ref.Name != "old" {
			t.Fatalf("pod %s controller %+v", p.Name, ref)
		}
	}
	srv.NewKubectl(t, framework.DefaultKubectl).MustRun("-n", ns, "scale", "rc/old", "--replicas=1")
	eventually(t, 30*time.Second, "1 replica", func() (bool, error) {
		rc, err := cs.CoreV1().ReplicationControllers(ns).Get(ctx, "old", metav1.GetOptions{})
		return err == nil && rc.Status.Replicas == 1, err
	})
}
