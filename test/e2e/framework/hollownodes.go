package framework

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// StartHollowNodes runs `skiff hollow-nodes --kubeconfig kubeconfig args...`
// until the test ends, then stops it with SIGTERM and expects a clean exit.
func StartHollowNodes(t testing.TB, kubeconfig string, args ...string) {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"hollow-nodes", "--kubeconfig", kubeconfig}, args...)...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := StartProcess(cmd); err != nil {
		t.Fatalf("start skiff hollow-nodes: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("skiff hollow-nodes exited %d after SIGTERM\n%s", code, logs.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("skiff hollow-nodes did not stop within 15s of SIGTERM\n%s", logs.String())
		}
		if t.Failed() {
			t.Logf("skiff hollow-nodes output:\n%s", logs.String())
		}
	})
}
