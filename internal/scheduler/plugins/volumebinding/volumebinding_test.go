package volumebinding

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersstoragev1 "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

func listers(objs ...any) framework.Listers {
	claims := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	vols := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	classes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, o := range objs {
		switch o.(type) {
		case *corev1.PersistentVolumeClaim:
			claims.Add(o)
		case *corev1.PersistentVolume:
			vols.Add(o)
		case *storagev1.StorageClass:
			classes.Add(o)
		}
	}
	return framework.Listers{Claims: listerscorev1.NewPersistentVolumeClaimLister(claims),
		Volumes: listerscorev1.NewPersistentVolumeLister(vols), StorageClasses: listersstoragev1.NewStorageClassLister(classes)}
}

func class(name string, mode storagev1.VolumeBindingMode, provisioner string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &mode}
}

func pvc(name, class, volume string, ann map[string]string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: "u-" + "name", Annotations: ann},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class, VolumeName: volume,
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
}

func pv(name, class, host string) *corev1.PersistentVolume {
	v := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{StorageClassName: class, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable}}
	if host != "" {
		v.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{host}}}}}}}
	}
	return v
}

func podWith(claims ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"}}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
	}
	return p
}

func nodeInfo(name string) *framework.NodeInfo {
	return &framework.NodeInfo{Node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}}
}

func TestVolumeBinding(t *testing.T) {
	wffc := class("local", storagev1.VolumeBindingWaitForFirstConsumer, "rancher.io/local-path")
	static := class("static", storagev1.VolumeBindingWaitForFirstConsumer, noProvisioner)
	imm := class("fast", storagev1.VolumeBindingImmediate, "example.com/x")
	bound := pvc("bound", "local", "pv-n1", nil)
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		objs      []any
		preFilter string            // a reason PreFilter rejects with; "skip" for Skip
		fits      map[string]string // node → reason ("" fits)
	}{
		{name: "no claims", pod: podWith(), preFilter: "skip"},
		{name: "missing claim", pod: podWith("x"), preFilter: `persistentvolumeclaim "x" not found`},
		{name: "unbound immediate", pod: podWith("c"), objs: []any{pvc("c", "fast", "", nil), imm}, preFilter: ErrUnboundImmediate},
		{name: "unbound without class", pod: podWith("c"), objs: []any{pvc("c", "", "", nil)}, preFilter: ErrUnboundImmediate},
		{name: "bound to a missing volume", pod: podWith("c"), objs: []any{pvc("c", "local", "gone", nil)}, preFilter: ErrBoundToMissingPV},
		{name: "bound volume's node affinity", pod: podWith("bound"), objs: []any{bound, pv("pv-n1", "local", "n1"), wffc},
			fits: map[string]string{"n1": "", "n2": ErrNodeConflict}},
		{name: "bound volume without affinity", pod: podWith("c"), objs: []any{pvc("c", "", "pv-any", nil), pv("pv-any", "", "")},
			fits: map[string]string{"n1": "", "n2": ""}},
		{name: "delayed with a provisioner fits anywhere", pod: podWith("c"), objs: []any{pvc("c", "local", "", nil), wffc},
			fits: map[string]string{"n1": "", "n2": ""}},
		{name: "delayed with selected node", pod: podWith("c"), objs: []any{pvc("c", "local", "", map[string]string{selectedNodeAnnotation: "n2"}), wffc},
			fits: map[string]string{"n1": ErrBindConflict, "n2": ""}},
		{name: "delayed static needs a free volume on the node", pod: podWith("c"), objs: []any{pvc("c", "static", "", nil), static, pv("l1", "static", "n1")},
			fits: map[string]string{"n1": "", "n2": ErrBindConflict}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := listers(tc.objs...)
			state := framework.NewCycleState()
			st := VolumeBinding{}.PreFilter(context.Background(), state, tc.pod, &framework.Snapshot{Listers: l})
			switch {
			case tc.preFilter == "skip":
				if !st.IsSkip() {
					t.Fatalf("PreFilter = %+v, want Skip", st)
				}
				return
			case tc.preFilter != "":
				if st.IsSuccess() || st.Code != framework.UnschedulableAndUnresolvable || strings.Join(st.Reasons, "") != tc.preFilter {
					t.Fatalf("PreFilter = %+v, want %q", st, tc.preFilter)
				}
				return
			case !st.IsSuccess():
				t.Fatalf("PreFilter = %+v", st)
			}
			for node, want := range tc.fits {
				st := VolumeBinding{}.Filter(context.Background(), state, tc.pod, nodeInfo(node))
				got := ""
				if !st.IsSuccess() {
					got = strings.Join(st.Reasons, "")
				}
				if got != want {
					t.Errorf("Filter on %s = %q, want %q", node, got, want)
				}
			}
		})
	}
}

func TestPreBindSetsSelectedNode(t *testing.T) {
	wffc := class("local", storagev1.VolumeBindingWaitForFirstConsumer, "rancher.io/local-path")
	c := pvc("c", "local", "", nil)
	done := pvc("done", "local", "pv-1", nil)
	client := fake.NewSimpleClientset(c, done)
	l := listers(c, done, wffc, pv("pv-1", "local", ""))
	if st := (VolumeBinding{}).PreBind(context.Background(), client, l, podWith("c", "done"), "n1"); !st.IsSuccess() {
		t.Fatalf("PreBind = %+v", st)
	}
	got, _ := client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "c", metav1.GetOptions{})
	if got.Annotations[selectedNodeAnnotation] != "n1" {
		t.Errorf("claim c annotations %v, want selected node n1", got.Annotations)
	}
	got, _ = client.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "done", metav1.GetOptions{})
	if _, ok := got.Annotations[selectedNodeAnnotation]; ok {
		t.Errorf("bound claim annotated: %v", got.Annotations)
	}
}
