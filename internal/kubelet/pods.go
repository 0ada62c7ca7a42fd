package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Waiting reasons, as upstream reports them.
const (
	reasonContainerCreating = "ContainerCreating"
	reasonPodInitializing   = "PodInitializing"
	reasonCrashLoopBackOff  = "CrashLoopBackOff"
	reasonErrImagePull      = "ErrImagePull"
	reasonErrImageNeverPull = "ErrImageNeverPull"
	reasonCreateError       = "CreateContainerError"
	reasonRunError          = "RunContainerError"
)

// defaultGrace is the termination grace period of a pod that names none.
const defaultGrace = 30

// syncPod brings one pod's runtime state and status in line with its spec.
// It is idempotent and reads the pod from the informer's cache.
func (k *Kubelet) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := k.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return k.forgetKey(ctx, key, "")
	}
	if err != nil {
		return err
	}
	// A pod of the same name but a new UID: the old one's runtime goes.
	if err := k.forgetKey(ctx, key, string(p.UID)); err != nil {
		return err
	}
	if p.DeletionTimestamp != nil {
		return k.terminatePod(ctx, p)
	}
	if terminal(p) {
		k.stopProbes(string(p.UID), nil)
		return k.stopSandboxes(ctx, string(p.UID))
	}
	return k.runPod(ctx, p)
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// forgetKey kills the runtime state of pods once known under key whose UID
// is not keep: the pod object is gone (or replaced).
func (k *Kubelet) forgetKey(ctx context.Context, key, keep string) error {
	k.mu.Lock()
	var gone []string
	for uid, kk := range k.keys {
		if kk == key && uid != keep {
			gone = append(gone, uid)
		}
	}
	k.mu.Unlock()
	for _, uid := range gone {
		if err := k.killPod(ctx, nil, uid, 2); err != nil {
			return err
		}
		k.mu.Lock()
		delete(k.keys, uid)
		k.mu.Unlock()
	}
	return nil
}

// runPod makes sure the pod has a sandbox, runs init containers in order
// and then the containers, restarting exited ones as the restart policy
// says, and posts the status that results.
func (k *Kubelet) runPod(ctx context.Context, p *corev1.Pod) error {
	uid := string(p.UID)
	st, err := k.podState(ctx, uid, "")
	if err != nil {
		return err
	}
	sb := st.readySandbox()
	var sbCfg *runtimeapi.PodSandboxConfig
	if sb == nil {
		// A dead sandbox takes its containers with it: start over.
		for _, old := range st.sandboxes {
			if err := k.removeSandbox(ctx, old.Id); err != nil {
				return err
			}
		}
		sbCfg = k.sandboxConfig(p, uint32(len(st.sandboxes)))
		if err := os.MkdirAll(sbCfg.LogDirectory, 0o755); err != nil {
			return err
		}
		if err := setupPodCgroup(p); err != nil {
			return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		start := k.now()
		tokensFetched := k.prefetchTokens(ctx, p)
		id, err := k.shims.runSandbox(p.UID, sbCfg, func() (string, error) { return k.rt.RunPodSandbox(ctx, sbCfg, k.runtimeHandler(sbCfg)) })
		tokensFetched()
		if err != nil {
			return err
		}
		k.log.Info("started pod sandbox", "pod", p.Namespace+"/"+p.Name, "sandbox", id, "took", k.now().Sub(start).Round(time.Millisecond))
		// The new sandbox has no containers yet: its status is all the
		// state there is (the old sandboxes were removed above).
		sbStatus, err := k.rt.PodSandboxStatus(ctx, id, false)
		if err != nil {
			return err
		}
		s := sbStatus.GetStatus()
		if s.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			return fmt.Errorf("sandbox %s of pod %s/%s not ready after start", id, p.Namespace, p.Name)
		}
		sb = &runtimeapi.PodSandbox{Id: id, Metadata: s.Metadata, State: s.State, CreatedAt: s.CreatedAt,
			Labels: s.Labels, Annotations: s.Annotations, RuntimeHandler: s.RuntimeHandler}
		st = &podState{sandboxes: []*runtimeapi.PodSandbox{sb}, containers: map[string][]*runtimeapi.ContainerStatus{}}
		return k.syncContainers(ctx, p, st, sb, s, sbCfg)
	}
	sbCfg = k.sandboxConfig(p, sb.GetMetadata().GetAttempt())
	r, err := k.rt.PodSandboxStatus(ctx, sb.Id, false)
	if err != nil {
		return err
	}
	return k.syncContainers(ctx, p, st, sb, r.GetStatus(), sbCfg)
}

// syncContainers runs the init containers and containers of the pod in
// its ready sandbox sb (st holds their runtime state, sbStatus the
// sandbox's) and posts the status that results.
func (k *Kubelet) syncContainers(ctx context.Context, p *corev1.Pod, st *podState, sb *runtimeapi.PodSandbox,
	sbStatus *runtimeapi.PodSandboxStatus, sbCfg *runtimeapi.PodSandboxConfig) error {
	uid := string(p.UID)
	w := &podWork{waiting: map[string]*corev1.ContainerStateWaiting{}}
	w.initDone, w.initFailed = true, false
	sc, err := k.startContext(ctx, p, sbStatus)
	if err != nil {
		return err
	}
	if left, ok := k.deadlineLeft(p); ok && left <= 0 {
		// activeDeadlineSeconds passed: the pod fails and nothing starts.
		w.deadlineExceeded = true
		if err := k.killContainers(ctx, p, sb.Id, podGrace(p)); err != nil {
			return err
		}
		w.started = true // re-read the runtime's state
	} else if ok {
		w.after(left)
	}
	switch {
	case w.deadlineExceeded:
	case initialized(p, st):
		// Sidecars restart beside the containers, whatever the pod's
		// restart policy.
		for i := range p.Spec.InitContainers {
			c := &p.Spec.InitContainers[i]
			if cs := st.latest(c.Name); isSidecar(c) && (cs == nil || cs.State == runtimeapi.ContainerState_CONTAINER_EXITED) {
				k.ensureStarted(ctx, p, c, cs, sb.Id, sbCfg, sc, w)
			}
		}
	default:
		for i := range p.Spec.InitContainers {
			c := &p.Spec.InitContainers[i]
			cs := st.latest(c.Name)
			if isSidecar(c) {
				// The next init container waits until the sidecar runs
				// (and passed its startup probe).
				if k.sidecarStarted(c, cs) {
					continue
				}
				w.initDone = false
				if cs == nil || cs.State == runtimeapi.ContainerState_CONTAINER_EXITED {
					k.ensureStarted(ctx, p, c, cs, sb.Id, sbCfg, sc, w)
				}
				if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
					w.after(time.Second) // its startup probe decides
				}
				break
			}
			if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED && cs.ExitCode == 0 {
				continue
			}
			w.initDone = false
			if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				break
			}
			if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED && p.Spec.RestartPolicy == corev1.RestartPolicyNever {
				w.initFailed = true
				break
			}
			k.ensureStarted(ctx, p, c, cs, sb.Id, sbCfg, sc, w)
			break
		}
	}
	if w.initDone && !w.deadlineExceeded {
		for i := range p.Spec.Containers {
			c := &p.Spec.Containers[i]
			cs := st.latest(c.Name)
			if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				continue
			}
			if cs != nil && cs.State == runtimeapi.ContainerState_CONTAINER_EXITED && !restarts(p.Spec.RestartPolicy, cs.ExitCode) {
				continue
			}
			k.ensureStarted(ctx, p, c, cs, sb.Id, sbCfg, sc, w)
		}
	}
	if w.started {
		if st.containers, err = k.containerStates(ctx, uid, sb.Id); err != nil {
			return err
		}
		k.observed(st)
	}
	k.syncProbes(ctx, p, st, sc.ec.podIPs)
	status, err := k.podStatus(ctx, p, st, sbStatus, w)
	if err != nil {
		return err
	}
	if err := k.writeStatus(ctx, p, status); err != nil {
		return err
	}
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		return k.stopSandboxes(ctx, uid)
	}
	if d := p.Spec.ActiveDeadlineSeconds; d != nil && p.Status.StartTime == nil && status.StartTime != nil && !terminalPhase(status.Phase) {
		// The pod starts now: its deadline counts from the start time just
		// written, and no later sync would schedule it (the kubelet's own
		// status write does not resync the pod).
		end := status.StartTime.Add(time.Duration(*d) * time.Second)
		w.after(max(end.Sub(k.now()), time.Millisecond))
	}
	for _, ws := range w.waiting {
		if ws.Reason == reasonErrImagePull {
			// A pull just failed: the next sync reports the back-off
			// (ImagePullBackOff) as upstream's does, without waiting for
			// it to end.
			w.after(time.Second)
		}
	}
	if needsResync(p) {
		w.after(volumeResync)
	}
	if w.requeue > 0 {
		k.queue.AddAfter(p.Namespace+"/"+p.Name, w.requeue)
	}
	return nil
}

// podWork collects what one sync did and could not do.
type podWork struct {
	initDone, initFailed bool
	// deadlineExceeded: activeDeadlineSeconds passed, the pod fails.
	deadlineExceeded bool
	started          bool
	waiting          map[string]*corev1.ContainerStateWaiting
	requeue          time.Duration
}

func (w *podWork) after(d time.Duration) {
	if d > 0 && (w.requeue == 0 || d < w.requeue) {
		w.requeue = d
	}
}

// restarts reports whether a container that exited with code runs again.
func restarts(policy corev1.RestartPolicy, code int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return code != 0
	}
	return true
}

// ensureStarted starts the next attempt of c (the first if last is nil),
// unless its crash back-off has not passed; what stands in the way is
// recorded as a waiting reason.
func (k *Kubelet) ensureStarted(ctx context.Context, p *corev1.Pod, c *corev1.Container, last *runtimeapi.ContainerStatus,
	sandboxID string, sbCfg *runtimeapi.PodSandboxConfig, sc *startContext, w *podWork) {
	attempt := uint32(0)
	if last != nil {
		attempt = last.GetMetadata().GetAttempt() + 1
		if last.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			delay := k.cfg.CrashBackoff << min(attempt-1, 10)
			if delay > k.cfg.MaxCrashBackoff || delay <= 0 {
				delay = k.cfg.MaxCrashBackoff
			}
			if left := time.Unix(0, last.FinishedAt).Add(delay).Sub(k.now()); left > 0 {
				w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff,
					Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, p.Name, p.Namespace, p.UID)}
				w.after(left)
				return
			}
		}
	}
	img, ok := k.ensureImage(ctx, p, c, w)
	if !ok {
		return
	}
	if sc.volErr != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating, Message: sc.volErr.Error()}
		w.after(5 * time.Second)
		return
	}
	if err := verifyRunAsNonRoot(p, c, img); err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonConfigError, Message: err.Error()}
		w.after(5 * time.Second)
		return
	}
	env, err := makeEnv(ctx, sc.objects, sc.ec, c)
	if err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonConfigError, Message: err.Error()}
		w.after(5 * time.Second)
		return
	}
	mounts, err := containerMounts(c, sc.vols, env)
	if err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonConfigError, Message: err.Error()}
		w.after(5 * time.Second)
		return
	}
	if err := mkdirLogs(sbCfg, c); err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCreateError, Message: err.Error()}
		return
	}
	tm, err := k.terminationMount(p, c, attempt)
	if err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCreateError, Message: err.Error()}
		w.after(5 * time.Second)
		return
	}
	if tm != nil {
		mounts = append(mounts, tm)
	}
	cfg := containerConfig(p, c, attempt, img.Id, env, mounts)
	cfg.Linux = k.linuxContainerConfig(p, c)
	id, err := k.rt.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonCreateError, Message: err.Error()}
		w.after(5 * time.Second)
		return
	}
	w.started = true
	if err := k.shims.startContainer(id, sbCfg, func() error { return k.rt.StartContainer(ctx, id) }); err != nil {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonRunError, Message: err.Error()}
		w.after(5 * time.Second)
	} else if msg, ok := k.postStart(ctx, p, c, id, firstIP(sc.ec.podIPs)); !ok {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonPostStartHookError, Message: msg}
		w.after(time.Second)
	}
	// Keep the previous attempt (its state is lastState); older ones go.
	k.removeOlder(ctx, string(p.UID), sandboxID, c.Name, attempt)
}

// removeOlder removes the attempts of a container older than attempt-1.
func (k *Kubelet) removeOlder(ctx context.Context, uid, sandboxID, name string, attempt uint32) {
	if attempt < 2 {
		return
	}
	cs, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID,
		LabelSelector: map[string]string{labelPodUID: uid, labelContainerName: name}})
	if err != nil {
		return
	}
	for _, c := range cs {
		if a := c.GetMetadata().GetAttempt(); a+1 < attempt {
			_ = k.rt.RemoveContainer(ctx, c.Id)
			_ = os.Remove(k.terminationLogPath(uid, name, a)) // its termination message goes with it
		}
	}
}

// terminatePod stops the pod's containers within its grace period, removes
// its sandboxes, and deletes the pod object for good.
func (k *Kubelet) terminatePod(ctx context.Context, p *corev1.Pod) error {
	grace := podGrace(p)
	start := k.now()
	if err := k.killPod(ctx, p, string(p.UID), grace); err != nil {
		return err
	}
	err := k.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptrTo[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	k.log.Info("pod terminated", "pod", p.Namespace+"/"+p.Name, "grace", grace, "took", k.now().Sub(start).Round(time.Millisecond))
	return nil
}

// killPod stops a pod's running containers within grace seconds (see
// stopContainers; p, if known, gives their preStop hooks and sidecars) and
// stops and removes its sandboxes.
func (k *Kubelet) killPod(ctx context.Context, p *corev1.Pod, uid string, grace int64) error {
	cs, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{labelPodUID: uid}})
	if err != nil {
		return err
	}
	podIP := ""
	if p != nil {
		podIP = p.Status.PodIP
	}
	if err := k.stopContainers(ctx, p, cs, grace, podIP); err != nil {
		return err
	}
	sbs, err := k.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{labelPodUID: uid}})
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		if err := k.removeSandbox(ctx, sb.Id); err != nil {
			return err
		}
	}
	removePodCgroup(uid)
	k.stopProbes(uid, nil)
	k.removePodDir(uid)
	return nil
}

func (k *Kubelet) removeSandbox(ctx context.Context, id string) error {
	if err := k.shims.stopSandbox(ctx, id, k.rt.StopPodSandbox); err != nil {
		return err
	}
	return k.rt.RemovePodSandbox(ctx, id)
}

// stopSandboxes stops a finished pod's sandboxes, which frees its IP; they
// stay (with their exited containers) until the pod is deleted.
func (k *Kubelet) stopSandboxes(ctx context.Context, uid string) error {
	sbs, err := k.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodUID: uid},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		if err := k.shims.stopSandbox(ctx, sb.Id, k.rt.StopPodSandbox); err != nil {
			return err
		}
	}
	return nil
}

// removeOrphans removes sandboxes whose pod is no longer bound to this node.
func (k *Kubelet) removeOrphans(ctx context.Context) {
	pods, err := k.podLister.List(labels.Everything())
	if err != nil {
		return
	}
	live := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		live[p.UID] = true
	}
	sbs, err := k.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return
	}
	// Volumes of pods that are gone, their sandboxes already removed (say,
	// while the agent was down).
	hasSandbox := map[string]bool{}
	for _, sb := range sbs {
		hasSandbox[sb.Labels[labelPodUID]] = true
	}
	dirs, _ := os.ReadDir(filepath.Join(k.cfg.DataDir, "agent", "pods"))
	if k.cfg.VolatileDir != "" {
		more, _ := os.ReadDir(k.cfg.VolatileDir)
		dirs = append(dirs, more...)
	}
	gone := map[string]bool{}
	for _, d := range dirs {
		if uid := d.Name(); d.IsDir() && uid != "logs" && !live[types.UID(uid)] && !hasSandbox[uid] && !gone[uid] {
			gone[uid] = true // removePodDir removes both of its directories
			k.removePodDir(uid)
		}
	}
	for _, sb := range sbs {
		uid, ok := sb.Labels[labelPodUID]
		if !ok || live[types.UID(uid)] {
			continue
		}
		k.log.Info("removing sandbox of a pod that is gone", "sandbox", sb.Id, "pod", sb.GetMetadata().GetNamespace()+"/"+sb.GetMetadata().GetName())
		if err := k.killPod(ctx, nil, uid, 2); err != nil {
			k.log.Warn("remove orphaned sandbox", "err", err)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// startContext is what starting a pod's containers needs beyond the spec:
// the API objects they refer to, the downward API's values, the volumes.
type startContext struct {
	objects *objects
	ec      *envContext
	vols    map[string]volume
	// volErr is why the volumes are not set up; no container starts then.
	volErr error
}

// startContext takes the pod's IPs from its sandbox's status and sets its
// volumes up.
func (k *Kubelet) startContext(ctx context.Context, p *corev1.Pod, sbStatus *runtimeapi.PodSandboxStatus) (*startContext, error) {
	ec := &envContext{pod: p, hostIP: k.nodeIP, nodeName: k.cfg.NodeName, allocatable: k.capacity()}
	if p.Spec.HostNetwork {
		ec.podIPs = []string{k.nodeIP}
	} else {
		if n := sbStatus.GetNetwork(); n != nil && n.Ip != "" {
			ec.podIPs = append(ec.podIPs, n.Ip)
			for _, a := range n.AdditionalIps {
				ec.podIPs = append(ec.podIPs, a.Ip)
			}
		}
	}
	objs := newObjects(k.cfg.Client, p.Namespace)
	objs.watch, objs.podUID = k.objects, string(p.UID)
	sc := &startContext{objects: objs, ec: ec}
	sc.vols, sc.volErr = k.setupVolumes(ctx, p, sc.objects, ec)
	if ps := p.Spec.SecurityContext; sc.volErr == nil && ps != nil && ps.FSGroup != nil {
		// fsGroup owns the pod's writable volumes (emptyDir here).
		for _, v := range p.Spec.Volumes {
			if v.EmptyDir == nil {
				continue
			}
			if err := applyFSGroup(sc.vols[v.Name].path, *ps.FSGroup); err != nil {
				sc.volErr = fmt.Errorf("MountVolume.SetUp failed for volume %q : set fsGroup: %w", v.Name, err)
				break
			}
		}
	}
	return sc, nil
}

// syncProbes runs the probes of the pod's running containers and stops
// those of containers that are gone.
func (k *Kubelet) syncProbes(ctx context.Context, p *corev1.Pod, st *podState, podIPs []string) {
	uid := string(p.UID)
	keep := map[string]bool{}
	podIP := ""
	if len(podIPs) > 0 {
		podIP = podIPs[0]
	}
	grace := int64(defaultGrace)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = *p.Spec.TerminationGracePeriodSeconds
	}
	var probed []*corev1.Container
	for i := range p.Spec.InitContainers {
		if isSidecar(&p.Spec.InitContainers[i]) {
			probed = append(probed, &p.Spec.InitContainers[i])
		}
	}
	for i := range p.Spec.Containers {
		probed = append(probed, &p.Spec.Containers[i])
	}
	for _, c := range probed {
		cs := st.latest(c.Name)
		if cs == nil || cs.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		keep[cs.Id] = true
		if c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil {
			continue
		}
		// The workers outlive this sync: they get the kubelet's context.
		k.ensureProbes(k.runCtx(ctx), containerProbe{key: p.Namespace + "/" + p.Name, uid: uid, podIP: podIP,
			container: *c.DeepCopy(), hostNetwork: p.Spec.HostNetwork, grace: grace,
			startedAt: time.Unix(0, cs.StartedAt)}, cs.Id)
	}
	k.stopProbes(uid, keep)
}

func firstIP(ips []string) string {
	if len(ips) > 0 {
		return ips[0]
	}
	return ""
}

// deadlineLeft is how long the pod may still be active under its
// activeDeadlineSeconds, counted from its start time; ok is false without
// a deadline (or before the pod started).
func (k *Kubelet) deadlineLeft(p *corev1.Pod) (time.Duration, bool) {
	if p.Spec.ActiveDeadlineSeconds == nil || p.Status.StartTime == nil {
		return 0, false
	}
	end := p.Status.StartTime.Add(time.Duration(*p.Spec.ActiveDeadlineSeconds) * time.Second)
	return end.Sub(k.now()), true
}

// killContainers stops the running containers of the pod's sandbox (with
// their preStop hooks; sidecars last); the sandbox stays.
func (k *Kubelet) killContainers(ctx context.Context, p *corev1.Pod, sandboxID string, grace int64) error {
	cs, err := k.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: sandboxID,
		LabelSelector: map[string]string{labelPodUID: string(p.UID)}})
	if err != nil {
		return err
	}
	return k.stopContainers(ctx, p, cs, grace, p.Status.PodIP)
}
