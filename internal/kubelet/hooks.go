package kubelet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Lifecycle reasons, as upstream reports them.
const (
	reasonPostStartHookError  = "PostStartHookError"
	eventFailedPostStartHook  = "FailedPostStartHook"
	eventFailedPreStopHook    = "FailedPreStopHook"
	eventKilling              = "Killing"
	minimumGracePeriodSeconds = 2
	// postStartTimeout bounds a postStart hook (upstream has none; a hook
	// that never ends would hold a pod worker forever).
	postStartTimeout = 5 * time.Minute
)

// runHook runs one lifecycle handler against a container; it returns
// upstream's message on failure.
func (k *Kubelet) runHook(ctx context.Context, p *corev1.Pod, c *corev1.Container, containerID, podIP string, h *corev1.LifecycleHandler, timeout time.Duration) (string, error) {
	switch {
	case h.Exec != nil:
		r, err := k.rt.ExecSync(ctx, containerID, h.Exec.Command, timeout)
		out := ""
		if err == nil {
			out = string(r.Stdout) + string(r.Stderr)
			if r.ExitCode != 0 {
				err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), r.ExitCode, out)
			}
		}
		if err != nil {
			return fmt.Sprintf("Exec lifecycle hook (%s) for Container %q in Pod %q failed - error: %v, message: %q",
				h.Exec.Command, c.Name, formatPod(p), err, out), err
		}
		return "", nil
	case h.HTTPGet != nil:
		if err := hookHTTP(ctx, c, podIP, h.HTTPGet, timeout); err != nil {
			return fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
				h.HTTPGet.Path, c.Name, formatPod(p), err), err
		}
		return "", nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return "", nil
	}
	err := fmt.Errorf("invalid handler: %v", h)
	return fmt.Sprintf("Cannot run handler: %v", err), err
}

func hookHTTP(ctx context.Context, c *corev1.Container, podIP string, g *corev1.HTTPGetAction, timeout time.Duration) error {
	port, err := probePort(g.Port, c)
	if err != nil {
		return err
	}
	host := podIP
	if g.Host != "" {
		host = g.Host
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if pu, err := url.Parse(path); err == nil {
		u.Path, u.RawQuery = pu.Path, pu.RawQuery
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	setHTTPHeaders(req, g.HTTPHeaders)
	resp, err := probeHTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP lifecycle hook failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// postStart runs c's postStart hook right after the container started; on
// failure the container is killed (it then restarts as its policy says)
// and the returned message becomes its waiting reason's.
func (k *Kubelet) postStart(ctx context.Context, p *corev1.Pod, c *corev1.Container, containerID, podIP string) (string, bool) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return "", true
	}
	hctx, cancel := context.WithTimeout(ctx, postStartTimeout)
	defer cancel()
	msg, err := k.runHook(hctx, p, c, containerID, podIP, c.Lifecycle.PostStart, postStartTimeout)
	if err == nil {
		return "", true
	}
	k.log.Info("postStart hook failed, killing container", "pod", p.Namespace+"/"+p.Name, "container", c.Name, "err", err)
	k.event(ctx, p, c.Name, corev1.EventTypeWarning, eventFailedPostStartHook, msg)
	if err := k.rt.StopContainer(ctx, containerID, podGrace(p)); err != nil {
		k.log.Warn("kill container after failed postStart hook", "err", err)
	}
	return msg, false
}

// podGrace is the pod's termination grace period (its deletion's if set).
func podGrace(p *corev1.Pod) int64 {
	grace := int64(defaultGrace)
	if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = *p.Spec.TerminationGracePeriodSeconds
	}
	if p.DeletionGracePeriodSeconds != nil {
		grace = *p.DeletionGracePeriodSeconds
	}
	return grace
}

// cachedPod is the informer's copy of the pod namespace/name, nil if none.
func (k *Kubelet) cachedPod(key string) *corev1.Pod {
	ns, name, ok := strings.Cut(key, "/")
	if !ok || k.podLister == nil {
		return nil
	}
	p, err := k.podLister.Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return p
}

// specOf finds the container or init container name in p.
func specOf(p *corev1.Pod, name string) *corev1.Container {
	if p == nil {
		return nil
	}
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// stopContainer stops one container as upstream's killContainer: its
// preStop hook runs first (bounded by the grace period, which it uses up),
// then the stop signal with what is left of grace, at least 2 seconds.
func (k *Kubelet) stopContainer(ctx context.Context, p *corev1.Pod, id, name string, grace int64, podIP string) error {
	c := specOf(p, name)
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		start := k.now()
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		msg, err := k.runHook(hctx, p, c, id, podIP, c.Lifecycle.PreStop, time.Duration(grace)*time.Second)
		cancel()
		if err != nil {
			k.log.Info("preStop hook failed", "pod", p.Namespace+"/"+p.Name, "container", name, "err", err)
			k.event(ctx, p, name, corev1.EventTypeWarning, eventFailedPreStopHook, msg)
		}
		grace -= int64(k.now().Sub(start).Seconds())
	}
	if grace < minimumGracePeriodSeconds {
		grace = minimumGracePeriodSeconds
	}
	if p != nil && c != nil {
		k.event(ctx, p, name, corev1.EventTypeNormal, eventKilling, fmt.Sprintf("Stopping container %s", name))
	}
	return k.rt.StopContainer(ctx, id, grace)
}

// stopContainers stops a pod's running containers within grace seconds:
// the regular ones at once, then the sidecars (restartable init
// containers) one by one in reverse order, as upstream terminates them
// after the containers they serve. p may be nil (a pod that is gone): then
// no hooks run and all stop at once.
func (k *Kubelet) stopContainers(ctx context.Context, p *corev1.Pod, cs []*runtimeapi.Container, grace int64, podIP string) error {
	start := k.now()
	var regular []*runtimeapi.Container
	sidecarIdx := map[string]int{}
	if p != nil {
		for i := range p.Spec.InitContainers {
			if isSidecar(&p.Spec.InitContainers[i]) {
				sidecarIdx[p.Spec.InitContainers[i].Name] = i
			}
		}
	}
	var sidecars []*runtimeapi.Container
	for _, c := range cs {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		if _, ok := sidecarIdx[c.GetMetadata().GetName()]; ok {
			sidecars = append(sidecars, c)
		} else {
			regular = append(regular, c)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(regular))
	for i, c := range regular {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = k.stopContainer(ctx, p, c.Id, c.GetMetadata().GetName(), grace, podIP)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// Sidecars in reverse order of their definition.
	for len(sidecars) > 0 {
		last := 0
		for i, c := range sidecars {
			if sidecarIdx[c.GetMetadata().GetName()] > sidecarIdx[sidecars[last].GetMetadata().GetName()] {
				last = i
			}
		}
		c := sidecars[last]
		sidecars = append(sidecars[:last], sidecars[last+1:]...)
		left := grace - int64(k.now().Sub(start).Seconds())
		if err := k.stopContainer(ctx, p, c.Id, c.GetMetadata().GetName(), left, podIP); err != nil {
			return err
		}
	}
	return nil
}

// event records an event about a container of p, as upstream's kubelet
// (source component kubelet, the node as host). Failures are only logged.
func (k *Kubelet) event(ctx context.Context, p *corev1.Pod, container, typ, reason, msg string) {
	if p == nil {
		return
	}
	now := metav1.NewTime(k.now())
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name, UID: p.UID,
		ResourceVersion: p.ResourceVersion}
	if container != "" {
		field := "spec.containers{" + container + "}"
		for _, c := range p.Spec.InitContainers {
			if c.Name == container {
				field = "spec.initContainers{" + container + "}"
			}
		}
		ref.FieldPath = field
	}
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, now.UnixNano()), Namespace: p.Namespace},
		InvolvedObject: ref, Reason: reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName},
		ReportingController: "kubelet", ReportingInstance: k.cfg.NodeName,
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := k.cfg.Client.CoreV1().Events(p.Namespace).Create(ectx, ev, metav1.CreateOptions{}); err != nil {
		k.log.Warn("record event", "reason", reason, "err", err)
	}
}
