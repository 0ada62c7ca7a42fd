package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// runControllers measures the controller manager on hollow nodes: a
// Deployment of `replicas` pods from creation to Available, then a rolling
// update of it, and the CPU each process spent. The controller manager and
// the hollow nodes run as their own processes so their CPU is their own.
func runControllers(bin string, nodes int, replicas int32) error {
	srv, cfg, err := startWithClient(bin, "skiff-bench-ctrl", "--disable-controllers")
	if err != nil {
		return err
	}
	defer srv.stop()
	kubeconfig := filepath.Join(srv.dir, "admin.kubeconfig")
	hollow, err := startHelper(bin, "skiff hollow-nodes is ready", "hollow-nodes", "--kubeconfig", kubeconfig, "--count", strconv.Itoa(nodes),
		"--cpu", "64", "--pods", "250")
	if err != nil {
		return err
	}
	defer stopHelper(hollow)
	cm := exec.Command(bin, "controller-manager", "--kubeconfig", kubeconfig)
	cm.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cm.Start(); err != nil {
		return err
	}
	defer stopHelper(cm)

	cs := clientset(cfg, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The controller manager campaigns for its Lease first.
	for {
		l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("controller manager did not take its lease")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // informers sync

	fmt.Printf("controllers: %d-replica Deployment on %d hollow nodes\n", replicas, nodes)
	quarter := intstr.FromString("25%")
	labels := map[string]string{"app": "bench"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &quarter, MaxUnavailable: &quarter}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "bench:1"}}}},
		},
	}
	cpu := func() [3]float64 {
		return [3]float64{processCPU(cm.Process.Pid), srv.cpuSeconds(), processCPU(hollow.Process.Pid)}
	}
	c0, t0 := cpu(), time.Now()
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := waitRolledOut(ctx, cs, replicas, 1); err != nil {
		return err
	}
	c1, t1 := cpu(), time.Now()
	fmt.Printf("  Deployment Available (all %d replicas): %.2f s (target ≤ 10 s)\n", replicas, t1.Sub(t0).Seconds())
	printCPU(c0, c1)

	cur, err := cs.AppsV1().Deployments("default").Get(ctx, "bench", metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Spec.Template.Spec.Containers[0].Image = "bench:2"
	if _, err := cs.AppsV1().Deployments("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if err := waitRolledOut(ctx, cs, replicas, cur.Generation+1); err != nil {
		return err
	}
	c2, t2 := cpu(), time.Now()
	fmt.Printf("  rolling update (25%% surge / 25%% unavailable) finished: %.2f s\n", t2.Sub(t1).Seconds())
	printCPU(c1, c2)
	return nil
}

func printCPU(a, b [3]float64) {
	fmt.Printf("    CPU: controller manager %.1f s, API server+etcd %.1f s, hollow nodes %.1f s\n", b[0]-a[0], b[1]-a[1], b[2]-a[2])
}

// waitRolledOut waits until the Deployment has observed generation gen and
// runs every replica updated and available.
func waitRolledOut(ctx context.Context, cs kubernetes.Interface, replicas int32, gen int64) error {
	for {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "bench", metav1.GetOptions{})
		if err == nil && d.Status.ObservedGeneration >= gen && d.Status.UpdatedReplicas == replicas &&
			d.Status.AvailableReplicas == replicas && d.Status.Replicas == replicas {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment not rolled out: %+v", d.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startHelper runs `skiff <args>` and waits for its ready line.
func startHelper(bin, ready string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), ready) {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("skiff %s exited before ready", args[0])
}

func stopHelper(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
