package hollownode

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
)

// Node identity reported in status.nodeInfo.
const (
	KubeletVersion = "v1.37.2-hollow"
	RuntimeVersion = "hollow://1.0"
	InstanceType   = "hollow"
	kubeletPort    = 10250
)

var everything = labels.Everything()

// registerAll creates or adopts every Node and its Lease, a few at a time.
func (n *Nodes) registerAll(ctx context.Context) error {
	errs := make([]error, len(n.names))
	workqueue.ParallelizeUntil(ctx, 16, len(n.names), func(i int) {
		nd := n.nodes[n.names[i]]
		// A just-started API server may refuse for a moment; retry briefly.
		for attempt := 0; ; attempt++ {
			errs[i] = n.register(ctx, nd)
			if errs[i] == nil || attempt == 4 || ctx.Err() != nil {
				return
			}
			n.log.Debug("register failed, retrying", "node", nd.name, "err", errs[i])
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
			}
		}
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// register creates (or adopts) the Node, posts its status and creates its
// Lease. The API server drops status on create, so status is a second write.
func (n *Nodes) register(ctx context.Context, nd *node) error {
	nodes := n.cfg.Client.CoreV1().Nodes()
	want := n.nodeObject(nd)
	got, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = nodes.Get(ctx, nd.name, metav1.GetOptions{})
		if err == nil && !hasLabels(got.Labels, want.Labels) {
			got = got.DeepCopy()
			if got.Labels == nil {
				got.Labels = map[string]string{}
			}
			maps.Copy(got.Labels, want.Labels)
			got, err = nodes.Update(ctx, got, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", nd.name, err)
	}
	if err := n.postStatus(ctx, nd, got); err != nil {
		return fmt.Errorf("register node %s: %w", nd.name, err)
	}
	if err := n.renewLease(ctx, nd); err != nil {
		return fmt.Errorf("register node %s: %w", nd.name, err)
	}
	return nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (n *Nodes) nodeObject(nd *node) *corev1.Node {
	lbls := map[string]string{
		corev1.LabelHostname:           nd.name,
		corev1.LabelOSStable:           "linux",
		corev1.LabelArchStable:         "amd64",
		corev1.LabelInstanceTypeStable: InstanceType,
	}
	maps.Copy(lbls, n.cfg.Labels)
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nd.name, Labels: lbls}}
}

// capacity is each node's capacity, also reported as allocatable.
func (n *Nodes) capacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(n.cfg.CPU),
		corev1.ResourceMemory:           resource.MustParse(n.cfg.Memory),
		corev1.ResourcePods:             resource.MustParse(n.cfg.Pods),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

// nodeConditions are what a healthy kubelet reports, with upstream reasons.
var nodeConditions = []struct {
	typ     corev1.NodeConditionType
	status  corev1.ConditionStatus
	reason  string
	message string
}{
	{corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
	{corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
	{corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
	{corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"},
}

// statusFor is the full status of a healthy node, keeping the transition
// times of conditions that did not change.
func (n *Nodes) statusFor(nd *node, old *corev1.NodeStatus, now metav1.Time) corev1.NodeStatus {
	capacity := n.capacity()
	st := corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity.DeepCopy(), Phase: old.Phase,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: nd.internalIP},
			{Type: corev1.NodeHostName, Address: nd.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kubeletPort}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: nd.machineID, SystemUUID: nd.machineID, BootID: nd.bootID,
			KernelVersion: kernelVersion(), OSImage: "Hollow Linux", ContainerRuntimeVersion: RuntimeVersion,
			KubeletVersion: KubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
		},
		Images: old.Images, VolumesInUse: old.VolumesInUse, VolumesAttached: old.VolumesAttached,
		Config: old.Config, RuntimeHandlers: old.RuntimeHandlers, Features: old.Features,
	}
	for _, c := range nodeConditions {
		nc := corev1.NodeCondition{Type: c.typ, Status: c.status, Reason: c.reason, Message: c.message,
			LastHeartbeatTime: now, LastTransitionTime: now}
		for _, o := range old.Conditions {
			if o.Type == c.typ && o.Status == c.status {
				nc.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, nc)
	}
	return st
}

// postStatus writes the node's status over cur (the server's or the
// informer's copy), the way the kubelet's heartbeat does.
func (n *Nodes) postStatus(ctx context.Context, nd *node, cur *corev1.Node) error {
	now := n.now()
	upd := cur.DeepCopy()
	upd.Status = n.statusFor(nd, &cur.Status, stamp(now))
	got, err := n.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	nd.mu.Lock()
	nd.uid, nd.lastReport = got.UID, now
	nd.mu.Unlock()
	return nil
}

// readyTrue reports whether the node's Ready condition is True.
func readyTrue(nd *corev1.Node) bool {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stamp is t as the API stores it (whole seconds), so a status built twice
// from the same times compares equal to what came back.
func stamp(t time.Time) metav1.Time { return metav1.NewTime(t.Truncate(time.Second)) }

func stableID(name string) string {
	sum := sha256.Sum256([]byte("hollow-node/" + name))
	return hex.EncodeToString(sum[:16])
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func kernelVersion() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "hollow"
	}
	return strings.TrimSpace(string(b))
}
