package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

const localPathDefaultDir = "/var/lib/skiff/storage"

func TestStorage(t *testing.T) {
	n := os.Getpid()
	srv := framework.StartServer(t, "--cluster-cidr", fmt.Sprintf("10.%d.0.0/16", 100+(n+31)%100))
	cs := srv.Client()
	ctx := framework.Context(t, 5*time.Minute)
	framework.StartHollowNodes(t, srv.Kubeconfig, "--count", "2", "--name-prefix", "sto-")
	until(t, 60*time.Second, "two hollow nodes", func() bool {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 2
	})
	kubectl := srv.NewKubectl(t, "1.32")

	t.Run("default class", func(t *testing.T) {
		out := kubectl.With(t).MustRun("get", "sc")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE" ||
			!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "local-path (default) rancher.io/local-path Delete WaitForFirstConsumer false ") {
			t.Fatalf("kubectl get sc:\n%s", out)
		}
		sc, err := cs.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Provisioner = "example.com/other"
		if _, err := cs.StorageV1().StorageClasses().Update(ctx, sc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
			!strings.Contains(err.Error(), "provisioner: Forbidden: updates to provisioner are forbidden.") {
			t.Fatalf("update provisioner: %v, want 422", err)
		}
		_, err = cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "bad"}}, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provisioner: Required value") {
			t.Fatalf("class without provisioner: %v, want 422", err)
		}
		r := kubectl.With(t).Run("explain", "storageclass.volumeBindingMode")
		if r.Err != nil || !strings.Contains(r.Stdout, "volumeBindingMode") {
			t.Errorf("kubectl explain: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
		}
	})

	t.Run("admission", func(t *testing.T) {
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("adm-default", "-", "1Gi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "local-path" {
			t.Errorf("claim without class got %v, want local-path", c.Spec.StorageClassName)
		}
		c, err = cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("adm-none", "", "1Gi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "" {
			t.Errorf("claim with class \"\" got %v, want \"\"", c.Spec.StorageClassName)
		}
		for _, name := range []string{"adm-default", "adm-none"} {
			cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, name, metav1.DeleteOptions{})
		}
	})

	t.Run("validation", func(t *testing.T) {
		noCap := hostPathPV("v-nocap", "", "1Gi", corev1.PersistentVolumeReclaimRetain)
		noCap.Spec.Capacity = nil
		two := hostPathPV("v-two", "", "1Gi", corev1.PersistentVolumeReclaimRetain)
		two.Spec.NFS = &corev1.NFSVolumeSource{Server: "x", Path: "/x"}
		none := hostPathPV("v-none", "", "1Gi", corev1.PersistentVolumeReclaimRetain)
		none.Spec.HostPath = nil
		noModes := hostPathPV("v-nomodes", "", "1Gi", corev1.PersistentVolumeReclaimRetain)
		noModes.Spec.AccessModes = nil
		local := hostPathPV("v-local", "", "1Gi", corev1.PersistentVolumeReclaimRetain)
		local.Spec.HostPath, local.Spec.Local = nil, &corev1.LocalVolumeSource{Path: "/mnt/x"}
		for _, tc := range []struct {
			pv   *corev1.PersistentVolume
			want string
		}{
			{noCap, "spec.capacity: Required value"},
			{two, "may not specify more than 1 volume type"},
			{none, "must specify a volume type"},
			{noModes, "spec.accessModes: Required value"},
			{local, "spec.nodeAffinity: Required value"},
		} {
			_, err := cs.CoreV1().PersistentVolumes().Create(ctx, tc.pv, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("create %s: %v, want 422 %q", tc.pv.Name, err, tc.want)
			}
		}
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("v-claim", "none", "1Gi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Update(ctx, c, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) ||
			!strings.Contains(err.Error(), "spec is immutable after creation") {
			t.Errorf("change claim access modes: %v, want 422", err)
		}
		bad := claim("v-bad", "none", "1Gi")
		bad.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"ReadSometimes"}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) ||
			!strings.Contains(err.Error(), `Unsupported value: "ReadSometimes"`) {
			t.Errorf("claim with a bad access mode: %v, want 422", err)
		}
		cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "v-claim", metav1.DeleteOptions{})
	})

	t.Run("static binding and reclaim", func(t *testing.T) {
		for _, pv := range []*corev1.PersistentVolume{
			hostPathPV("manual-small", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain),
			hostPathPV("manual-big", "manual", "5Gi", corev1.PersistentVolumeReclaimDelete),
			hostPathPV("manual-rox", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain, corev1.ReadOnlyMany),
			hostPathPV("other-class", "other", "1Gi", corev1.PersistentVolumeReclaimRetain),
		} {
			if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		until(t, 20*time.Second, "volumes Available", func() bool {
			l, _ := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
			for _, v := range l.Items {
				if strings.HasPrefix(v.Name, "manual-") && v.Status.Phase != corev1.VolumeAvailable {
					return false
				}
			}
			return true
		})
		start := time.Now()
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("small", "manual", "500Mi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var c *corev1.PersistentVolumeClaim
		until(t, 20*time.Second, "claim small Bound", func() bool {
			c = getClaim(t, cs, "small")
			return c.Status.Phase == corev1.ClaimBound
		})
		t.Logf("claim bound to an existing volume in %v", time.Since(start).Round(time.Millisecond))
		if c.Spec.VolumeName != "manual-small" || c.Annotations["pv.kubernetes.io/bind-completed"] != "yes" ||
			c.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" || c.Status.Capacity.Storage().String() != "1Gi" {
			t.Fatalf("claim small: volume %q, annotations %v, capacity %v", c.Spec.VolumeName, c.Annotations, c.Status.Capacity)
		}
		pv := getPV(t, cs, "manual-small")
		if pv.Status.Phase != corev1.VolumeBound || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != c.UID ||
			pv.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" {
			t.Fatalf("volume manual-small: phase %s, claimRef %+v, annotations %v", pv.Status.Phase, pv.Spec.ClaimRef, pv.Annotations)
		}
		out := kubectl.With(t).MustRun("get", "pvc", "small")
		if !strings.Contains(strings.Join(strings.Fields(out), " "), "small Bound manual-small 1Gi RWO manual") {
			t.Errorf("kubectl get pvc:\n%s", out)
		}

		// A second claim takes the next best fit; a claim nothing serves waits.
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("second", "manual", "1Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("huge", "manual", "10Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		until(t, 20*time.Second, "claim second Bound to manual-big", func() bool {
			c := getClaim(t, cs, "second")
			return c.Status.Phase == corev1.ClaimBound && c.Spec.VolumeName == "manual-big"
		})
		// Pre-bound: a claim naming its volume gets it.
		pre := claim("pre", "manual", "100Mi", corev1.ReadOnlyMany)
		pre.Spec.VolumeName = "manual-rox"
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, pre, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		until(t, 20*time.Second, "pre-bound claim Bound", func() bool { return getClaim(t, cs, "pre").Status.Phase == corev1.ClaimBound })
		time.Sleep(time.Second)
		if c := getClaim(t, cs, "huge"); c.Status.Phase != corev1.ClaimPending || c.Spec.VolumeName != "" {
			t.Errorf("claim huge: %s %q, want Pending", c.Status.Phase, c.Spec.VolumeName)
		}

		// Retain: the volume stays Released. Delete without a deleter: Failed.
		for _, name := range []string{"small", "second"} {
			if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		until(t, 20*time.Second, "manual-small Released", func() bool { return getPV(t, cs, "manual-small").Status.Phase == corev1.VolumeReleased })
		until(t, 20*time.Second, "manual-big Failed", func() bool { return getPV(t, cs, "manual-big").Status.Phase == corev1.VolumeFailed })
		if msg := getPV(t, cs, "manual-big").Status.Message; !strings.Contains(msg, "no deletable volume plugin matched") {
			t.Errorf("manual-big message %q", msg)
		}
		// A released volume is not bound again.
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("again", "manual", "500Mi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if c := getClaim(t, cs, "again"); c.Status.Phase != corev1.ClaimPending {
			t.Errorf("claim again: %s bound to %q, want Pending", c.Status.Phase, c.Spec.VolumeName)
		}
	})

	t.Run("scheduling errors", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, claimPod("no-claim", "nope"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("immediate", "manual", "50Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, claimPod("unbound", "immediate"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for pod, want := range map[string]string{"no-claim": `persistentvolumeclaim "nope" not found`,
			"unbound": "pod has unbound immediate PersistentVolumeClaims"} {
			p := framework.WaitPod(t, cs, pod, 30*time.Second, "unschedulable", func(p *corev1.Pod) bool {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && strings.Contains(c.Message, want) {
						return true
					}
				}
				return false
			})
			if p.Spec.NodeName != "" {
				t.Errorf("pod %s bound to %s", pod, p.Spec.NodeName)
			}
		}
		// The claim appears: the parked pod is retried.
		if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("nope", "-", "1Gi"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		framework.WaitPod(t, cs, "no-claim", 30*time.Second, "scheduled once its claim exists", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	})

	t.Run("immediate classes", func(t *testing.T) {
		immediate := storagev1.VolumeBindingImmediate
		for name, prov := range map[string]string{"lp-now": "rancher.io/local-path", "ext": "example.com/ext"} {
			sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: prov, VolumeBindingMode: &immediate}
			if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("c-"+name, name, "1Gi"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		event := func(claim, reason, text string) func() bool {
			return func() bool {
				l, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
					"involvedObject.name": claim, "reason": reason}.String()})
				return err == nil && len(l.Items) > 0 && strings.Contains(l.Items[0].Message, text)
			}
		}
		// As K3s: local-path needs a node, which only WaitForFirstConsumer gives.
		until(t, 20*time.Second, "local-path without a node fails", event("c-lp-now", "ProvisioningFailed", "configuration error, no node was specified"))
		until(t, 20*time.Second, "external provisioner awaited", event("c-ext", "ExternalProvisioning", "external provisioner 'example.com/ext'"))
		if c := getClaim(t, cs, "c-ext"); c.Annotations["volume.kubernetes.io/storage-provisioner"] != "example.com/ext" || c.Status.Phase != corev1.ClaimPending {
			t.Errorf("claim c-ext: %s, annotations %v", c.Status.Phase, c.Annotations)
		}
	})

	t.Run("local-path provisioning", func(t *testing.T) {
		c, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("data", "-", "2Gi"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		until(t, 20*time.Second, "WaitForFirstConsumer event", func() bool {
			l, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
				"involvedObject.name": "data", "reason": "WaitForFirstConsumer"}.String()})
			return err == nil && len(l.Items) > 0
		})
		time.Sleep(500 * time.Millisecond)
		if c := getClaim(t, cs, "data"); c.Status.Phase != corev1.ClaimPending {
			t.Fatalf("claim of a WaitForFirstConsumer class without consumer: %s", c.Status.Phase)
		}
		start := time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, claimPod("writer", "data"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := framework.WaitPod(t, cs, "writer", 30*time.Second, "scheduled", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
		until(t, 30*time.Second, "claim data Bound", func() bool { return getClaim(t, cs, "data").Status.Phase == corev1.ClaimBound })
		t.Logf("pod created → claim provisioned and bound in %v", time.Since(start).Round(time.Millisecond))
		c = getClaim(t, cs, "data")
		if c.Annotations["volume.kubernetes.io/selected-node"] != p.Spec.NodeName || c.Spec.VolumeName != "pvc-"+string(c.UID) {
			t.Fatalf("claim data: annotations %v, volume %q", c.Annotations, c.Spec.VolumeName)
		}
		pv := getPV(t, cs, c.Spec.VolumeName)
		wantPath := filepath.Join(localPathDefaultDir, pv.Name+"_default_data")
		if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != wantPath || pv.Spec.HostPath.Type == nil ||
			*pv.Spec.HostPath.Type != corev1.HostPathDirectoryOrCreate {
			t.Errorf("volume source %+v, want hostPath %s DirectoryOrCreate", pv.Spec.PersistentVolumeSource, wantPath)
		}
		if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != "local-path" ||
			pv.Annotations["pv.kubernetes.io/provisioned-by"] != "rancher.io/local-path" || pv.Status.Phase != corev1.VolumeBound ||
			pv.Spec.Capacity.Storage().String() != "2Gi" {
			t.Errorf("volume %s: %+v %+v", pv.Name, pv.Spec, pv.Status)
		}
		na := pv.Spec.NodeAffinity
		if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 ||
			fmt.Sprint(na.Required.NodeSelectorTerms[0].MatchExpressions) != fmt.Sprintf("[{kubernetes.io/hostname In [%s]}]", p.Spec.NodeName) {
			t.Errorf("volume node affinity %+v", na)
		}
		// A second consumer goes where the volume is.
		for i := range 3 {
			name := fmt.Sprintf("reader-%d", i)
			if _, err := cs.CoreV1().Pods("default").Create(ctx, claimPod(name, "data"), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			r := framework.WaitPod(t, cs, name, 30*time.Second, "scheduled", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
			if r.Spec.NodeName != p.Spec.NodeName {
				t.Errorf("pod %s on %s, its volume is on %s", name, r.Spec.NodeName, p.Spec.NodeName)
			}
		}
		// Deleting the claim releases the volume and deletes it; it waits
		// for its node to remove the data (hollow nodes never do).
		if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Its pods still run: pvc-protection keeps the claim (Terminating)
		// and so the volume Bound, its data kept.
		time.Sleep(3 * time.Second)
		if c := getClaim(t, cs, "data"); c.DeletionTimestamp == nil {
			t.Fatalf("claim data in use: no deletionTimestamp")
		}
		if v := getPV(t, cs, pv.Name); v.DeletionTimestamp != nil || v.Status.Phase != corev1.VolumeBound {
			t.Fatalf("volume %s of a claim in use: phase %s, deletionTimestamp %v", pv.Name, v.Status.Phase, v.DeletionTimestamp)
		}
		zero := int64(0)
		for _, name := range []string{"writer", "reader-0", "reader-1", "reader-2"} {
			if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatal(err)
			}
		}
		until(t, 30*time.Second, "volume deleted, waiting for its node", func() bool {
			v := getPV(t, cs, pv.Name)
			return v.DeletionTimestamp != nil && v.Status.Phase == corev1.VolumeReleased
		})
		v := getPV(t, cs, pv.Name)
		v.Finalizers = nil
		if _, err := cs.CoreV1().PersistentVolumes().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		until(t, 10*time.Second, "volume gone", func() bool {
			_, err := cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	})

	t.Run("statefulset claims", func(t *testing.T) {
		replicas := int32(2)
		labels := map[string]string{"app": "db"}
		tmpl := claimPod("x", "data").Spec
		tmpl.Volumes = nil
		ss := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"}, Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "db",
			Template:             corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{*claim("data", "-", "1Gi")},
		}}
		ss.Spec.VolumeClaimTemplates[0].Namespace = ""
		if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, ss, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			pod, claimName := fmt.Sprintf("db-%d", i), fmt.Sprintf("data-db-%d", i)
			until(t, 60*time.Second, claimName+" Bound", func() bool {
				c, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, claimName, metav1.GetOptions{})
				return err == nil && c.Status.Phase == corev1.ClaimBound
			})
			p := framework.WaitPod(t, cs, pod, 30*time.Second, "scheduled", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
			c := getClaim(t, cs, claimName)
			if *c.Spec.StorageClassName != "local-path" || c.Annotations["volume.kubernetes.io/selected-node"] != p.Spec.NodeName {
				t.Errorf("claim %s: class %s, annotations %v, pod on %s", claimName, *c.Spec.StorageClassName, c.Annotations, p.Spec.NodeName)
			}
		}
	})
}
