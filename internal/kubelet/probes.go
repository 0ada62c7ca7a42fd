package kubelet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

func (k probeKind) String() string {
	return [...]string{"Liveness", "Readiness", "Startup"}[k]
}

// probeState is the result of one probe as upstream's worker keeps it: it
// flips to success after successThreshold consecutive successes and to
// failure after failureThreshold consecutive failures.
type probeState struct {
	success, failure int32
	result           bool
	lastOK           bool
	run              int32 // consecutive results equal to lastOK
}

// newProbeState starts as upstream's: readiness and startup fail until a
// probe succeeds, liveness succeeds until probes fail.
func newProbeState(kind probeKind, p *corev1.Probe) *probeState {
	s := &probeState{success: max(p.SuccessThreshold, 1), failure: max(p.FailureThreshold, 1)}
	s.result = kind == liveness
	return s
}

// observe records one probe result and reports whether the result changed.
func (s *probeState) observe(ok bool) bool {
	if ok == s.lastOK {
		s.run++
	} else {
		s.lastOK, s.run = ok, 1
	}
	if ok == s.result {
		return false
	}
	if (ok && s.run >= s.success) || (!ok && s.run >= s.failure) {
		s.result = ok
		return true
	}
	return false
}

// probeKey names one probe of one container attempt.
type probeKey struct {
	containerID string
	kind        probeKind
}

func newProbes() *probes {
	return &probes{workers: map[probeKey]*probeWorker{}, results: map[probeKey]bool{}}
}

// probes runs the probe workers of this node's containers and holds their
// results.
type probes struct {
	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[probeKey]bool
}

type probeWorker struct {
	cancel context.CancelFunc
	uid    string
}

// result is a container's probe result; a container without that probe
// counts as passing it.
func (ps *probes) result(containerID string, kind probeKind) (bool, bool) {
	if ps == nil {
		return false, false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r, ok := ps.results[probeKey{containerID, kind}]
	return r, ok
}

// containerProbe is what a worker needs to probe one container.
type containerProbe struct {
	key, uid, podIP string
	container       corev1.Container
	hostNetwork     bool
	grace           int64
	startedAt       time.Time
}

// ensureProbes starts the workers of a running container's probes once.
func (k *Kubelet) ensureProbes(ctx context.Context, cp containerProbe, containerID string) {
	c := &cp.container
	for kind, pr := range map[probeKind]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
		if pr == nil {
			continue
		}
		key := probeKey{containerID, kind}
		k.probes.mu.Lock()
		if _, ok := k.probes.workers[key]; ok {
			k.probes.mu.Unlock()
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		k.probes.workers[key] = &probeWorker{cancel: cancel, uid: cp.uid}
		k.probes.results[key] = kind == liveness
		k.probes.mu.Unlock()
		go k.probeLoop(wctx, cp, containerID, kind, pr)
	}
}

// stopProbes stops the workers of a pod's containers except those in keep.
func (k *Kubelet) stopProbes(uid string, keep map[string]bool) {
	k.probes.mu.Lock()
	defer k.probes.mu.Unlock()
	for key, w := range k.probes.workers {
		if w.uid == uid && !keep[key.containerID] {
			w.cancel()
			delete(k.probes.workers, key)
			delete(k.probes.results, key)
		}
	}
}

func (k *Kubelet) probeLoop(ctx context.Context, cp containerProbe, id string, kind probeKind, pr *corev1.Probe) {
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	st := newProbeState(kind, pr)
	// The first probe runs initialDelaySeconds after the container started.
	first := time.Until(cp.startedAt.Add(time.Duration(pr.InitialDelaySeconds) * time.Second))
	t := time.NewTimer(max(first, 0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(period)
		if kind != startup && cp.container.StartupProbe != nil {
			if ok, _ := k.probes.result(id, startup); !ok {
				continue // the startup probe gates the others
			}
		}
		if kind == startup && st.result {
			continue // upstream stops probing startup once it succeeded
		}
		err := k.runProbe(ctx, cp, id, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if !st.observe(err == nil) {
			continue
		}
		k.probes.mu.Lock()
		if _, live := k.probes.workers[probeKey{id, kind}]; !live {
			k.probes.mu.Unlock()
			return
		}
		k.probes.results[probeKey{id, kind}] = st.result
		k.probes.mu.Unlock()
		k.log.Info("probe result changed", "pod", cp.key, "container", cp.container.Name, "probe", kind.String(), "ok", st.result, "err", err)
		if !st.result && (kind == liveness || kind == startup) {
			// The container is killed and restarts as its restart policy says.
			k.log.Info("container failed "+strings.ToLower(kind.String())+" probe, will be restarted", "pod", cp.key, "container", cp.container.Name)
			grace := cp.grace
			if pr.TerminationGracePeriodSeconds != nil {
				grace = *pr.TerminationGracePeriodSeconds
			}
			// As upstream, the container's preStop hook runs first.
			if err := k.stopContainer(ctx, k.cachedPod(cp.key), id, cp.container.Name, grace, cp.podIP); err != nil {
				k.log.Warn("kill container after failed probe", "err", err)
			}
		}
		k.queue.Add(cp.key)
		if !st.result && (kind == liveness || kind == startup) {
			return
		}
	}
}

// runProbe runs one probe; nil is success.
func (k *Kubelet) runProbe(ctx context.Context, cp containerProbe, id string, pr *corev1.Probe, timeout time.Duration) error {
	host := cp.podIP
	switch {
	case pr.Exec != nil:
		r, err := k.rt.ExecSync(ctx, id, pr.Exec.Command, timeout)
		if err != nil {
			return err
		}
		if r.ExitCode != 0 {
			return fmt.Errorf("command %q exited with %d: %s", pr.Exec.Command, r.ExitCode, strings.TrimSpace(string(r.Stdout)+string(r.Stderr)))
		}
		return nil
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := probePort(g.Port, &cp.container)
		if err != nil {
			return err
		}
		if g.Host != "" {
			host = g.Host
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
		if pu, err := url.Parse(path); err == nil {
			u.Path, u.RawQuery = pu.Path, pu.RawQuery
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.37")
		req.Header.Set("Accept", "*/*")
		setHTTPHeaders(req, g.HTTPHeaders)
		resp, err := probeHTTP.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := probePort(pr.TCPSocket.Port, &cp.container)
		if err != nil {
			return err
		}
		if pr.TCPSocket.Host != "" {
			host = pr.TCPSocket.Host
		}
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case pr.GRPC != nil:
		return grpcProbe(ctx, host, pr.GRPC, timeout)
	}
	return fmt.Errorf("probe type not supported by this kubelet yet")
}

// probeHTTP follows no redirects to other hosts' ports beyond Go's default
// and skips TLS verification, as upstream's prober does.
var probeHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // as upstream

// probePort resolves a named port through the container's ports.
func probePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p.StrVal, c.Name)
}

// setHTTPHeaders applies a probe's or hook's httpHeaders to req; a "Host"
// header sets the request's host, as upstream.
func setHTTPHeaders(req *http.Request, headers []corev1.HTTPHeader) {
	for _, h := range headers {
		if strings.EqualFold(h.Name, "host") {
			req.Host = h.Value
		} else {
			req.Header.Set(h.Name, h.Value)
		}
	}
}
