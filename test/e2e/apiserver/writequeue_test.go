package apiserver_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// With one seat for mutating requests, concurrent clients' creates,
// patches and deletes all succeed in turn (none is refused or fails), and
// the in-process scheduler, which does not wait in the line, still writes
// every pod's status while the clients keep the seat busy.
func TestMutatingRequestsShareOneSeat(t *testing.T) {
	s := framework.StartServer(t, "--max-mutating-requests-inflight", "1", "--disable-controllers",
		"--disable-admission-plugins", "ServiceAccount")
	cs := s.Client()
	ctx := context.Background()
	ns := namespace(t, cs)

	const clients, each = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*each*3)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("p-%d-%d", c, i)
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("create %s: %w", name, err)
					continue
				}
				patch := []byte(`{"metadata":{"labels":{"patched":"yes"}}}`)
				if _, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					errs <- fmt.Errorf("patch %s: %w", name, err)
				}
				if i%2 == 0 {
					if err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
						errs <- fmt.Errorf("delete %s: %w", name, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Every seat was given back, and nobody waits.
	metrics, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, want := range []string{`apiserver_current_inflight_requests{request_kind="mutating"} 0`, `apiserver_current_inqueue_requests{request_kind="mutating"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The pods left (odd i) are labelled, and the scheduler found no node
	// for each (no agent runs): its status writes got through.
	want := clients * (each / 2)
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		unschedulable := 0
		for _, p := range list.Items {
			if p.Labels["patched"] != "yes" {
				t.Fatalf("pod %s not patched: %v", p.Name, p.Labels)
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					unschedulable++
				}
			}
		}
		if len(list.Items) != want {
			t.Fatalf("%d pods left, want %d", len(list.Items), want)
		}
		if unschedulable == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d pods have the scheduler's PodScheduled=False", unschedulable, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A negative limit is refused at start-up with a message naming the flag.
func TestMutatingRequestsFlagValidated(t *testing.T) {
	out, err := exec.Command(framework.Binary(t), "server", "--max-mutating-requests-inflight", "-1", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil {
		t.Fatalf("server started with a negative limit: %s", out)
	}
	if !strings.Contains(string(out), "--max-mutating-requests-inflight") {
		t.Fatalf("error does not name the flag: %s", out)
	}
}
