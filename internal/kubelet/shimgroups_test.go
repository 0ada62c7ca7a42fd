package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// uidsInOneGroup returns n pod UIDs that hash to the same shim group.
func uidsInOneGroup(n int) []types.UID {
	var out []types.UID
	for i := 0; len(out) < n; i++ {
		if uid := types.UID(fmt.Sprintf("uid-%d", i)); groupOf(uid) == 0 {
			out = append(out, uid)
		}
	}
	return out
}

func TestShimGroups(t *testing.T) {
	ctx := context.Background()
	s := newShimGroupSet(time.Unix(1_800_000_000, 0))
	uids := uidsInOneGroup(3)
	n := 0
	run := func(uid types.UID, fail bool) (string, string) {
		cfg := &runtimeapi.PodSandboxConfig{Annotations: map[string]string{"a": "b", shimGroupAnnotation: "someone-else"}}
		id, err := s.runSandbox(uid, cfg, func() (string, error) {
			if fail {
				return "", errors.New("cni failed")
			}
			n++
			return fmt.Sprintf("sb%d", n), nil
		})
		if (err != nil) != fail {
			t.Fatalf("runSandbox: %v", err)
		}
		if cfg.Annotations["a"] != "b" {
			t.Errorf("pod annotations lost: %v", cfg.Annotations)
		}
		return id, cfg.Annotations[shimGroupAnnotation]
	}
	stop := func(ctx context.Context, id string) error { return nil }

	a, nameA := run(uids[0], false)
	b, nameB := run(uids[1], false)
	if nameA != nameB || nameA == "someone-else" {
		t.Fatalf("pods of one group got shims %q and %q", nameA, nameB)
	}
	// One sandbox left: the shim stays, and so does the name.
	if err := s.stopSandbox(ctx, a, stop); err != nil {
		t.Fatal(err)
	}
	if _, name := run(uids[2], false); name != nameA {
		t.Errorf("name changed while the shim had a sandbox: %q, want %q", name, nameA)
	}
	// The group's last sandboxes stop: its shim exits, the name is not used again.
	s.stopSandbox(ctx, b, stop)
	s.stopSandbox(ctx, "sb3", stop)
	s.stopSandbox(ctx, "sb3", stop) // stopped twice: counted once
	_, next := run(uids[0], false)
	if next == nameA {
		t.Errorf("name %q used again after the group's shim had no sandbox left", next)
	}
	// A failed start in an empty group may have started a shim that exits.
	s.stopSandbox(ctx, "sb4", stop)
	_, before := run(uids[0], true)
	_, after := run(uids[0], false)
	if before == after {
		t.Errorf("name %q used again after a failed start in an empty group", after)
	}
	// A failed start in a group with a sandbox (its shim may have died):
	// the next start gets a new name too.
	_, before = run(uids[1], true)
	_, after2 := run(uids[1], false)
	if before != after || after2 == after {
		t.Errorf("names %q, %q after a failed start in a group with a sandbox of %q: want the failed start on %q and a new name after it", before, after2, after, after)
	}
	after = after2
	// Another kubelet run never repeats this run's names.
	if _, other := (func() (string, string) {
		s2 := newShimGroupSet(time.Unix(1_800_000_001, 0))
		cfg := &runtimeapi.PodSandboxConfig{}
		s2.runSandbox(uids[0], cfg, func() (string, error) { return "x", nil })
		return "", cfg.Annotations[shimGroupAnnotation]
	})(); other == after {
		t.Errorf("a new run reused the name %q", other)
	}
}

// TestShimGroupStopBlocksStart checks that a group's sandbox start waits
// for a stop in progress in that group (the stop may be shutting down the
// shim the start would use).
func TestShimGroupStopBlocksStart(t *testing.T) {
	ctx := context.Background()
	s := newShimGroupSet(time.Now())
	uids := uidsInOneGroup(2)
	id, _ := s.runSandbox(uids[0], &runtimeapi.PodSandboxConfig{}, func() (string, error) { return "sb1", nil })
	stopping, release := make(chan struct{}), make(chan struct{})
	go s.stopSandbox(ctx, id, func(context.Context, string) error {
		close(stopping)
		<-release
		return nil
	})
	<-stopping
	started := make(chan string, 1)
	go func() {
		cfg := &runtimeapi.PodSandboxConfig{}
		s.runSandbox(uids[1], cfg, func() (string, error) { return "sb2", nil })
		started <- cfg.Annotations[shimGroupAnnotation]
	}()
	select {
	case <-started:
		t.Fatal("a start ran while a stop in its group was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if name := <-started; name != "skiff-0-"+s.run+".1" {
		t.Errorf("start after the group's last stop got %q, want generation 1", name)
	}
}

// TestShimGroupStartContainer checks the announcement of a container start
// to the agent's shim wrapper: a file named by the ID holding the sandbox's
// shim socket while the start runs, none without a socket, a directory or
// a containerd ID.
func TestShimGroupStartContainer(t *testing.T) {
	dir := t.TempDir()
	s := newShimGroupSet(time.Now())
	s.startDir = dir
	id := "0123456789abcdef"
	withSock := &runtimeapi.PodSandboxConfig{Annotations: map[string]string{shimSocketAnnotation: "/run/containerd/s/ab"}}
	for _, tc := range []struct {
		name  string
		set   *shimGroupSet
		id    string
		sbCfg *runtimeapi.PodSandboxConfig
		want  string // the file's content during the start, "" for none
	}{
		{"announced", s, id, withSock, "/run/containerd/s/ab"},
		{"no socket in the sandbox config", s, id, &runtimeapi.PodSandboxConfig{}, ""},
		{"no start dir", newShimGroupSet(time.Now()), id, withSock, ""},
		{"not a containerd ID", s, "../x", withSock, ""},
		{"no shim groups", nil, id, withSock, ""},
	} {
		ran := false
		errStart := errors.New("start failed")
		err := tc.set.startContainer(tc.id, tc.sbCfg, func() error {
			ran = true
			b, err := os.ReadFile(filepath.Join(dir, tc.id))
			if got := string(b); got != tc.want || (tc.want == "") != (err != nil) {
				t.Errorf("%s: file during the start %q, %v; want %q", tc.name, got, err, tc.want)
			}
			return errStart
		})
		if !ran || err != errStart {
			t.Errorf("%s: start ran %v, returned %v", tc.name, ran, err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%s: files left after the start: %v", tc.name, left)
		}
	}
}
