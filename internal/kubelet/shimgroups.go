package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// shimGroupAnnotation names the containerd shim a pod's sandbox and
// containers run under: runc's v2 shim serves every container whose spec
// carries the same value from one process. The agent's containerd passes it
// from the sandbox config to the OCI specs (the runtime's pod_annotations).
const shimGroupAnnotation = "io.containerd.runc.v2.group"

// shimSocketAnnotation carries the socket of the group's shim to the
// sandbox's and its containers' specs (the runtime's pod_annotations): the
// agent's shim wrapper answers a container's shim start itself when that
// socket is there (internal/agent/containerd/shimns.go), instead of
// starting a shim process only to find the group's shim running.
const shimSocketAnnotation = "skiff.sh/shim-socket"

// shimSocket is where containerd 1.6's runc v2 shim of group listens
// (shim.SocketAddress: the SHA-256 of the containerd address, the CRI
// namespace and the group, under /run/containerd/s).
func shimSocket(containerdAddress, group string) string {
	sum := sha256.Sum256([]byte(filepath.Join(containerdAddress, "k8s.io", group)))
	return "/run/containerd/s/" + hex.EncodeToString(sum[:])
}

// shimGroups is how many shims the node's pods share. Without grouping
// each pod starts a shim of its own (a process start, its own ttrpc
// connection and ~13 MB of memory per pod); one shim for all would
// serialize container creation, which a shim does under one lock.
const shimGroups = 8

// shimGroupSet hands out shim group names. A shim exits once its last task
// is deleted and, while exiting, removes the socket at the path its group
// name gives; a new shim of the same name started meanwhile would lose its
// socket (and be lost to containerd after a restart). So a name is never
// used again once a group's last sandbox stopped: each group has a
// generation, bumped then, and the names of one kubelet run never repeat a
// former run's. A group's sandbox starts and stops are serialized, so no
// start picks a name whose shim a concurrent stop is shutting down.
type shimGroupSet struct {
	run string // this kubelet run, in every name
	// address is containerd's socket; "" leaves shimSocketAnnotation out.
	address string
	// startDir is Config.ShimStartDir ("": no announcements).
	startDir string
	mu       [shimGroups]sync.Mutex

	state sync.Mutex
	gen   [shimGroups]int
	live  [shimGroups]int
	// sandboxes maps the sandboxes this run started (and has not stopped)
	// to their group; sandboxes of a former run are not counted, their
	// shims have names no new sandbox gets.
	sandboxes map[string]int
}

func newShimGroupSet(now time.Time) *shimGroupSet {
	return &shimGroupSet{run: strconv.FormatInt(now.UnixNano(), 36), sandboxes: map[string]int{}}
}

// groupOf spreads pods over the groups by UID.
func groupOf(uid types.UID) int {
	h := fnv.New32a()
	h.Write([]byte(uid))
	return int(h.Sum32() % shimGroups)
}

// runSandbox starts a sandbox in the pod's shim group: it sets the group
// annotation on cfg (whatever the pod's annotations say: a pod cannot pick
// another pod's shim) and runs start while holding the group.
func (s *shimGroupSet) runSandbox(uid types.UID, cfg *runtimeapi.PodSandboxConfig, start func() (string, error)) (string, error) {
	if s == nil {
		return start()
	}
	g := groupOf(uid)
	s.mu[g].Lock()
	defer s.mu[g].Unlock()
	s.state.Lock()
	name := "skiff-" + strconv.Itoa(g) + "-" + s.run + "." + strconv.Itoa(s.gen[g])
	s.state.Unlock()
	a := make(map[string]string, len(cfg.Annotations)+1)
	for k, v := range cfg.Annotations {
		a[k] = v
	}
	a[shimGroupAnnotation] = name
	if s.address != "" {
		a[shimSocketAnnotation] = shimSocket(s.address, name)
	} else {
		delete(a, shimSocketAnnotation)
	}
	cfg.Annotations = a
	id, err := start()
	s.state.Lock()
	defer s.state.Unlock()
	switch {
	case err == nil:
		s.sandboxes[id] = g
		s.live[g]++
	default:
		// A failed start in an empty group may have started and shut down
		// the group's shim; in a group with sandboxes it may have failed
		// because the shim died (the agent's shim wrapper hands a start
		// the socket a dead shim left). Either way the group's next
		// sandbox gets a new name and so a new shim; the group's running
		// sandboxes stay with theirs.
		s.gen[g]++
	}
	return id, err
}

// stopSandbox stops a sandbox (its task leaves its shim) while holding its
// group, and moves the group to a new name when it was the group's last.
func (s *shimGroupSet) stopSandbox(ctx context.Context, id string, stop func(context.Context, string) error) error {
	if s == nil {
		return stop(ctx, id)
	}
	s.state.Lock()
	g, ok := s.sandboxes[id]
	s.state.Unlock()
	if !ok {
		return stop(ctx, id)
	}
	s.mu[g].Lock()
	defer s.mu[g].Unlock()
	err := stop(ctx, id)
	if err != nil {
		return err
	}
	s.state.Lock()
	defer s.state.Unlock()
	delete(s.sandboxes, id)
	if s.live[g]--; s.live[g] == 0 {
		s.gen[g]++
	}
	return nil
}

// startContainer runs start (the CRI StartContainer of container id, whose
// sandbox config is sbCfg) with the start announced in startDir: a file
// named id holding the group's shim socket, from which the agent's shim
// wrapper answers containerd's shim start without reading the spec. The
// file goes when start returns. Without a socket in sbCfg (a sandbox of an
// earlier sync: the wrapper reads the spec) or a startDir, start just runs.
func (s *shimGroupSet) startContainer(id string, sbCfg *runtimeapi.PodSandboxConfig, start func() error) error {
	if s == nil || s.startDir == "" || !validContainerID(id) {
		return start()
	}
	sock := sbCfg.GetAnnotations()[shimSocketAnnotation]
	if sock == "" {
		return start()
	}
	path := filepath.Join(s.startDir, id)
	if err := os.WriteFile(path, []byte(sock), 0o600); err != nil {
		return start()
	}
	defer os.Remove(path)
	return start()
}

// validContainerID: containerd's IDs are 64 hex digits, which the wrapper
// also checks before it reads a file by that name.
func validContainerID(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
