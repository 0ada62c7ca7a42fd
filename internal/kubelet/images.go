package kubelet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Image pull back-off, as the kubelet's: 10 s doubling to 5 min, per pod
// and image (upstream's key is "<pod UID>_<image>").
const (
	imageBackoffBase = 10 * time.Second
	imageBackoffMax  = 5 * time.Minute
)

// Waiting reasons and event reasons of image handling, as upstream's.
const (
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonImageInspectError = "ImageInspectError"
	eventPulling            = "Pulling"
	eventPulled             = "Pulled"
	eventFailed             = "Failed"
	eventBackOff            = "BackOff"
	eventFailedSecret       = "FailedToRetrieveImagePullSecret"
)

// imageService is the part of the CRI image service pulls use.
type imageService interface {
	ImageStatus(ctx context.Context, ref string) (*runtimeapi.Image, error)
	PullImage(ctx context.Context, ref string, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error)
}

// imageManager makes sure a container's image is present, pulling it as
// the pull policy says. Pulls run in their own goroutine, so a slow or
// failing registry holds up only the pods that use it: the pod waits in
// ContainerCreating and is queued again when the pull ends.
type imageManager struct {
	svc      imageService
	client   kubernetes.Interface
	recorder record.EventRecorder
	now      func() time.Time
	// ctx bounds the pulls (the kubelet's run context).
	ctx     context.Context
	requeue func(key string)

	mu      sync.Mutex
	pulls   map[string]*pullState
	backoff map[string]*pullBackoff
}

type pullState struct {
	done   bool
	doneAt time.Time
	err    error
}

type pullBackoff struct {
	delay time.Duration
	until time.Time
	// last is the message of the failure that started the back-off.
	last string
}

// images returns the kubelet's image manager, made on first use with an
// event recorder that writes through the API.
func (k *Kubelet) imageManager(ctx context.Context) *imageManager {
	k.imagesOnce.Do(func() {
		runCtx := k.runCtx(ctx)
		var rec record.EventRecorder = &record.FakeRecorder{}
		if k.cfg.Client != nil {
			b := record.NewBroadcaster(record.WithContext(runCtx))
			b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.cfg.Client.CoreV1().Events("")})
			rec = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
			go func() { <-runCtx.Done(); b.Shutdown() }()
		}
		k.images = newImageManager(runCtx, k.rt, k.cfg.Client, rec, k.now, func(key string) {
			if k.queue != nil {
				k.queue.Add(key)
			}
		})
	})
	return k.images
}

func newImageManager(ctx context.Context, svc imageService, client kubernetes.Interface, rec record.EventRecorder,
	now func() time.Time, requeue func(string)) *imageManager {
	return &imageManager{svc: svc, client: client, recorder: rec, now: now, ctx: ctx, requeue: requeue,
		pulls: map[string]*pullState{}, backoff: map[string]*pullBackoff{}}
}

// ensureImage returns the image of c when it is present as its pull policy
// wants; otherwise it records why c waits in w and returns false.
func (k *Kubelet) ensureImage(ctx context.Context, p *corev1.Pod, c *corev1.Container, w *podWork) (*runtimeapi.Image, bool) {
	return k.imageManager(ctx).ensure(ctx, p, c, w)
}

func (m *imageManager) ensure(ctx context.Context, p *corev1.Pod, c *corev1.Container, w *podWork) (*runtimeapi.Image, bool) {
	ref := containerRef(p, c)
	img, err := m.svc.ImageStatus(ctx, c.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)
		m.recorder.Event(ref, corev1.EventTypeWarning, eventFailed, msg)
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonImageInspectError, Message: msg}
		w.after(5 * time.Second)
		return nil, false
	}
	policy := pullPolicy(c)
	key := string(p.UID) + "_" + c.Image
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	m.gc(now)
	if st := m.pulls[key]; st != nil {
		if !st.done {
			w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
			return nil, false
		}
		delete(m.pulls, key)
		if st.err != nil {
			w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: st.err.Error()}
			if b := m.backoff[key]; b != nil {
				w.after(b.until.Sub(now))
			}
			return nil, false
		}
		if img == nil {
			msg := fmt.Sprintf("image %q is not present after a successful pull", c.Image)
			w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: msg}
			w.after(imageBackoffBase)
			return nil, false
		}
		return img, true
	}
	switch {
	case img != nil && policy != corev1.PullAlways:
		m.recorder.Eventf(ref, corev1.EventTypeNormal, eventPulled, "Container image %q already present on machine", c.Image)
		return img, true
	case policy == corev1.PullNever:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		m.recorder.Event(ref, corev1.EventTypeWarning, reasonErrImageNeverPull, msg)
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonErrImageNeverPull, Message: msg}
		w.after(imageBackoffBase)
		return nil, false
	}
	if b := m.backoff[key]; b != nil && now.Before(b.until) {
		m.recorder.Eventf(ref, corev1.EventTypeNormal, eventBackOff, "Back-off pulling image %q", c.Image)
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonImagePullBackOff,
			Message: fmt.Sprintf("Back-off pulling image %q: %s: %s", c.Image, reasonErrImagePull, b.last)}
		w.after(b.until.Sub(now))
		return nil, false
	}
	st := &pullState{}
	m.pulls[key] = st
	m.recorder.Eventf(ref, corev1.EventTypeNormal, eventPulling, "Pulling image %q", c.Image)
	go m.pull(p.DeepCopy(), c.Image, ref, key, st)
	w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
	return nil, false
}

// pull pulls image with the pod's pull secrets that match its registry
// (each in turn until one works; anonymously when none match), records
// the outcome, and queues the pod again.
func (m *imageManager) pull(p *corev1.Pod, image string, ref *corev1.ObjectReference, key string, st *pullState) {
	begin := m.now()
	auths := m.credentials(p, image, ref)
	if len(auths) == 0 {
		auths = []*runtimeapi.AuthConfig{nil}
	}
	var err error
	for _, a := range auths {
		if _, err = m.svc.PullImage(m.ctx, image, a, nil); err == nil {
			break
		}
	}
	var size uint64
	if err == nil {
		if img, serr := m.svc.ImageStatus(m.ctx, image); serr == nil && img != nil {
			size = img.Size
		}
	}
	now := m.now()
	m.mu.Lock()
	st.done, st.doneAt = true, now
	if err != nil {
		msg := fmt.Sprintf("Failed to pull image %q: %s", image, runtimeMessage(err))
		st.err = errors.New(msg)
		b := m.backoff[key]
		if b == nil {
			b = &pullBackoff{delay: imageBackoffBase}
			m.backoff[key] = b
		} else {
			b.delay = min(2*b.delay, imageBackoffMax)
		}
		b.until, b.last = now.Add(b.delay), msg
		m.mu.Unlock()
		m.recorder.Event(ref, corev1.EventTypeWarning, eventFailed, msg)
		m.recorder.Event(ref, corev1.EventTypeWarning, eventFailed, "Error: "+reasonErrImagePull)
	} else {
		delete(m.backoff, key)
		m.mu.Unlock()
		took := now.Sub(begin).Round(time.Millisecond)
		m.recorder.Eventf(ref, corev1.EventTypeNormal, eventPulled,
			"Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes.", image, took, took, size)
	}
	m.requeue(p.Namespace + "/" + p.Name)
}

// gc forgets back-offs that ended long ago and outcomes no sync picked up
// (of pods deleted meanwhile).
func (m *imageManager) gc(now time.Time) {
	for k, b := range m.backoff {
		if now.Sub(b.until) > 2*imageBackoffMax {
			delete(m.backoff, k)
		}
	}
	for k, st := range m.pulls {
		if st.done && now.Sub(st.doneAt) > 2*imageBackoffMax {
			delete(m.pulls, k)
		}
	}
}

// credentials returns the auth entries of the pod's image pull secrets that
// match image's registry. A secret that cannot be read is reported in an
// event and skipped, as upstream does.
func (m *imageManager) credentials(p *corev1.Pod, image string, ref *corev1.ObjectReference) []*runtimeapi.AuthConfig {
	if m.client == nil || len(p.Spec.ImagePullSecrets) == 0 {
		return nil
	}
	var secrets []*corev1.Secret
	var missing []string
	for _, s := range p.Spec.ImagePullSecrets {
		sec, err := m.client.CoreV1().Secrets(p.Namespace).Get(m.ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			missing = append(missing, s.Name)
			continue
		}
		secrets = append(secrets, sec)
	}
	if len(missing) > 0 {
		m.recorder.Eventf(ref, corev1.EventTypeWarning, eventFailedSecret,
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
	}
	return pullAuths(secrets, image)
}

// dockerAuth is one registry's entry of a docker config.
type dockerAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// pullAuths returns the credentials of the dockerconfigjson and dockercfg
// secrets whose registry key matches image, in secret order.
func pullAuths(secrets []*corev1.Secret, image string) []*runtimeapi.AuthConfig {
	host, repo := registryOf(image)
	var out []*runtimeapi.AuthConfig
	for _, s := range secrets {
		var entries map[string]dockerAuth
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) != nil {
				continue
			}
			entries = cfg.Auths
		case corev1.SecretTypeDockercfg:
			if json.Unmarshal(s.Data[corev1.DockerConfigKey], &entries) != nil {
				continue
			}
		default:
			continue
		}
		for key, e := range entries {
			if !registryMatches(key, host, repo) {
				continue
			}
			// No ServerAddress: containerd parses it as a URL and drops
			// credentials whose URL host is not the registry's, which
			// a bare "host:port" key would not survive.
			a := &runtimeapi.AuthConfig{Username: e.Username, Password: e.Password,
				IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
			if a.Username == "" && e.Auth != "" {
				if raw, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
					a.Username, a.Password, _ = strings.Cut(string(raw), ":")
				}
			}
			out = append(out, a)
		}
	}
	return out
}

// registryOf splits an image reference into its registry host (docker.io
// when it names none) and repository path.
func registryOf(image string) (host, repo string) {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	first, rest, ok := strings.Cut(name, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first, rest
	}
	if !strings.Contains(name, "/") {
		name = "library/" + name
	}
	return "docker.io", name
}

// registryMatches reports whether a docker config key ("host",
// "https://host/v1/", "host/path", "*.host") applies to host/repo.
func registryMatches(key, host, repo string) bool {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	kh, kp, _ := strings.Cut(strings.TrimSuffix(key, "/"), "/")
	if kp == "v1" || kp == "v2" {
		kp = ""
	}
	norm := func(h string) string {
		switch h {
		case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
			return "docker.io"
		}
		return h
	}
	kh, host = norm(kh), norm(host)
	if kh != host {
		if ok, _ := path.Match(kh, host); !ok || !strings.Contains(kh, "*") {
			return false
		}
	}
	return kp == "" || repo == kp || strings.HasPrefix(repo, kp+"/")
}

// pullPolicy is c's policy, or the API server's default for its tag when
// unset: Always for :latest or no tag, IfNotPresent otherwise.
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	name, _, digest := strings.Cut(c.Image, "@")
	if digest {
		return corev1.PullIfNotPresent
	}
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') && name[i+1:] != "latest" {
		return corev1.PullIfNotPresent
	}
	return corev1.PullAlways
}

// containerRef is the object events about c are recorded on.
func containerRef(p *corev1.Pod, c *corev1.Container) *corev1.ObjectReference {
	field := "spec.containers{" + c.Name + "}"
	for _, ic := range p.Spec.InitContainers {
		if ic.Name == c.Name {
			field = "spec.initContainers{" + c.Name + "}"
		}
	}
	return &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name,
		UID: p.UID, ResourceVersion: p.ResourceVersion, FieldPath: field}
}

// runtimeMessage is the runtime's error text without our call context:
// the gRPC status as upstream shows it ("rpc error: code = NotFound desc = ...").
func runtimeMessage(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			return e.Error()
		}
	}
	return err.Error()
}
