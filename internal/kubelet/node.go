package kubelet

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-sh/skiff/internal/controller/localpath"
)

const kubeletPort = 10250

// notReadyTaintWait bounds how long a starting kubelet waits for the
// not-ready taint to go.
const notReadyTaintWait = 30 * time.Second

// registerNode creates the Node with its status (the API server keeps a
// Node's status on create, as upstream's), or adopts an existing one and
// posts its status. A just-started server may refuse for a moment, so it
// retries until ctx ends.
func (k *Kubelet) registerNode(ctx context.Context) error {
	nodes := k.cfg.Client.CoreV1().Nodes()
	for attempt := 0; ; attempt++ {
		nd := k.nodeObject()
		nd.Status = k.nodeStatus(ctx, corev1.NodeStatus{})
		got, err := nodes.Create(ctx, nd, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			if got, err = nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err == nil {
				if got, err = k.reapplyLabels(ctx, got); err == nil {
					err = k.postStatus(ctx, got)
				}
			}
		}
		if err == nil {
			k.log.Info("node registered")
			return k.renewLease(ctx, got.UID)
		}
		k.log.Warn("register node failed, retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*500*time.Millisecond, 5*time.Second)):
		}
	}
}

// nodeObject is the Node the kubelet registers: the default labels, then
// NodeLabels over them (as upstream's initialNode), and the taints to
// register with.
func (k *Kubelet) nodeObject() *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname:   k.cfg.NodeName,
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
	maps.Copy(labels, k.cfg.NodeLabels)
	nd := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName,
		Annotations: map[string]string{localpath.DirAnnotation: k.localPathDir()}, Labels: labels}}
	nd.Spec.Taints = append([]corev1.Taint(nil), k.cfg.RegisterWithTaints...)
	// As upstream's kubelet, a new Node keeps pods away until it is Ready:
	// the node lifecycle controller removes the taint then.
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	if !slices.ContainsFunc(nd.Spec.Taints, func(t corev1.Taint) bool { return notReady.MatchTaint(&t) }) {
		nd.Spec.Taints = append(nd.Spec.Taints, notReady)
	}
	return nd
}

// reapplyLabels sets NodeLabels on an existing Node, as K3s re-applies its
// --node-label at each start: changed values are updated, labels no longer
// given are left alone, and taints are not touched (upstream registers
// taints only with a new Node).
func (k *Kubelet) reapplyLabels(ctx context.Context, nd *corev1.Node) (*corev1.Node, error) {
	changed := false
	for key, v := range k.cfg.NodeLabels {
		if cur, ok := nd.Labels[key]; !ok || cur != v {
			changed = true
		}
	}
	if !changed {
		return nd, nil
	}
	upd := nd.DeepCopy()
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	maps.Copy(upd.Labels, k.cfg.NodeLabels)
	got, err := k.cfg.Client.CoreV1().Nodes().Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update node labels: %w", err)
	}
	k.log.Info("re-applied node labels", "labels", k.cfg.NodeLabels)
	return got, nil
}

// heartbeat renews the Lease every LeaseRenew and posts node status every
// StatusReport, or sooner when the server's copy is not Ready.
func (k *Kubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(k.cfg.LeaseRenew)
	defer t.Stop()
	lastReport := k.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nd, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if err := k.registerNode(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("re-register node", "err", err)
			}
			continue
		}
		if err != nil {
			k.log.Warn("heartbeat: get node", "err", err)
			continue
		}
		if err := k.renewLease(ctx, nd.UID); err != nil {
			k.log.Warn("heartbeat", "err", err)
		}
		if k.now().Sub(lastReport) >= k.cfg.StatusReport || !nodeReady(nd) {
			if err := k.postStatus(ctx, nd); err != nil {
				k.log.Warn("heartbeat", "err", err)
				continue
			}
			lastReport = k.now()
		}
	}
}

func nodeReady(nd *corev1.Node) bool {
	for _, c := range nd.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeConditions are what a healthy kubelet reports, with upstream reasons;
// Ready is last.
var nodeConditions = []corev1.NodeCondition{
	{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
	{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
	{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
	{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
}

// readyCondition is the Ready condition for the runtime's status (or the
// error asking for it): True only when the runtime and its network are
// ready, else False with upstream's reason and a message naming what is
// not (for a node whose CNI config is not written yet: "container runtime
// network not ready: NetworkReady=false reason:NetworkPluginNotReady
// message:...").
func readyCondition(st *runtimeapi.RuntimeStatus, err error) corev1.NodeCondition {
	ready := nodeConditions[len(nodeConditions)-1]
	var problems []string
	if err != nil {
		problems = append(problems, "container runtime is down: "+err.Error())
	} else {
		for _, want := range []struct{ typ, what string }{
			{runtimeapi.RuntimeReady, "container runtime not ready"},
			{runtimeapi.NetworkReady, "container runtime network not ready"},
		} {
			var c *runtimeapi.RuntimeCondition
			for _, have := range st.GetConditions() {
				if have.GetType() == want.typ {
					c = have
				}
			}
			switch {
			case c == nil:
				problems = append(problems, fmt.Sprintf("%s: %s condition missing", want.what, want.typ))
			case !c.GetStatus():
				problems = append(problems, fmt.Sprintf("%s: %s=false reason:%s message:%s", want.what, want.typ, c.GetReason(), c.GetMessage()))
			}
		}
	}
	if len(problems) > 0 {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "KubeletNotReady", strings.Join(problems, ", ")
	}
	return ready
}

// postStatus writes the node's status over cur.
func (k *Kubelet) postStatus(ctx context.Context, cur *corev1.Node) error {
	return k.postStatusOnce(ctx, cur, true)
}

func (k *Kubelet) postStatusOnce(ctx context.Context, cur *corev1.Node, retry bool) error {
	upd := cur.DeepCopy()
	upd.Status = k.nodeStatus(ctx, cur.Status)
	_, err := k.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) && retry {
		// Controllers write the node too (node IPAM sets spec.podCIDR right
		// after registration): try once more over the server's copy.
		if cur, err = k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err == nil {
			return k.postStatusOnce(ctx, cur, false)
		}
	}
	if err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	return nil
}

// nodeStatus is the node's status now over old (the status as stored):
// capacity, addresses, node info and the conditions, Ready from the
// runtime's status; a condition's transition time stays while its status
// does.
func (k *Kubelet) nodeStatus(ctx context.Context, old corev1.NodeStatus) corev1.NodeStatus {
	now := metav1.NewTime(k.now().Truncate(time.Second))
	st := old.DeepCopy()
	capacity := k.capacity()
	st.Capacity, st.Allocatable = capacity, capacity.DeepCopy()
	hostname, _ := os.Hostname()
	st.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: k.nodeIP}, {Type: corev1.NodeHostName, Address: hostname}}
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: k.port}}
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID: readTrim("/etc/machine-id"), SystemUUID: readTrim("/sys/class/dmi/id/product_uuid"), BootID: readTrim("/proc/sys/kernel/random/boot_id"),
		KernelVersion: readTrim("/proc/sys/kernel/osrelease"), OSImage: osImage(),
		ContainerRuntimeVersion: k.runtimeVersion, KubeletVersion: k.cfg.KubeletVersion,
		OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
	}
	conds := append([]corev1.NodeCondition(nil), nodeConditions[:len(nodeConditions)-1]...)
	conds = append(conds, readyCondition(k.runtimeStatus(ctx)))
	st.Conditions = nil
	for _, c := range conds {
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	return *st
}

// capacity is the node's: CPUs, memory from /proc/meminfo, 110 pods, and the
// data dir's file system as ephemeral-storage.
func (k *Kubelet) capacity() corev1.ResourceList {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
	}
	if m := memTotal(); m > 0 {
		rl[corev1.ResourceMemory] = *resource.NewQuantity(m, resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(k.cfg.DataDir, &fs); err == nil {
		rl[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	return rl
}

// memTotal is the host's memory in bytes (0 if /proc/meminfo is unreadable).
func memTotal() int64 {
	return int64(readKeyed("/proc/meminfo")["MemTotal:"]) * 1024
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// renewLease sets the node Lease's renewTime to now, creating it if missing.
func (k *Kubelet) renewLease(ctx context.Context, nodeUID types.UID) error {
	leases := k.cfg.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	l, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	create := apierrors.IsNotFound(err)
	if create {
		l, err = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: corev1.NamespaceNodeLease}}, nil
	}
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	l = l.DeepCopy()
	holder, dur := k.cfg.NodeName, int32(leaseDurationSeconds)
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &holder, &dur
	l.Spec.RenewTime = &metav1.MicroTime{Time: k.now()}
	if nodeUID != "" {
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: k.cfg.NodeName, UID: nodeUID}}
	}
	if create {
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
	} else {
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// waitSchedulable waits (30 s at most) until the node lifecycle controller
// has removed the not-ready taints of a Node that was not Ready, so that
// the kubelet's readiness means pods can be scheduled to it.
func (k *Kubelet) waitSchedulable(ctx context.Context) {
	deadline := k.now().Add(notReadyTaintWait)
	for {
		nd, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err == nil && !slices.ContainsFunc(nd.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeNotReady }) {
			return
		}
		if k.now().After(deadline) {
			k.log.Warn("the node still has the not-ready taint; is the node lifecycle controller running?", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPodCIDR waits for the node IPAM controller to assign spec.podCIDR.
func (k *Kubelet) waitPodCIDR(ctx context.Context) (string, error) {
	logged := false
	for {
		nd, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err == nil && nd.Spec.PodCIDR != "" {
			return nd.Spec.PodCIDR, nil
		}
		if !logged {
			k.log.Info("waiting for the node's podCIDR")
			logged = true
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodeIP returns want, or the host's first global unicast IPv4 address
// that is not on a pod bridge or veth.
func nodeIP(want string) (string, error) {
	if want != "" {
		return want, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("node ip: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 ||
			strings.HasPrefix(i.Name, "veth") || strings.HasPrefix(i.Name, "skiff") || strings.HasPrefix(i.Name, "cni") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String(), nil
			}
		}
	}
	return "127.0.0.1", nil
}
