package framework

import (
	"os/exec"
	"runtime"
	"syscall"
)

// The kernel delivers a child's parent-death signal (Pdeathsig) when the
// *thread* that forked it exits, not the process. Go ends a thread whenever
// a goroutine exits while locked to it — as tests that enter a pod's
// network namespace do — so a child forked on such a thread would be
// killed mid-test. Every child of the suite is forked on one locked
// thread that lives as long as the test binary.
var spawner = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: this thread must not be reused or end
		for f := range spawner {
			f()
		}
	}()
}

// StartProcess starts cmd so that it is killed when the test binary dies
// (and only then).
func StartProcess(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	spawner <- func() { errc <- cmd.Start() }
	return <-errc
}
