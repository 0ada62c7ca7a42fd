package kubelet

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeImages has the images in present; a pull of an image in pullable
// adds it, others fail with NotFound; block holds pulls of an image until
// closed.
type fakeImages struct {
	mu       sync.Mutex
	present  map[string]bool
	pullable map[string]bool
	block    map[string]chan struct{}
	auths    []*runtimeapi.AuthConfig
	pulls    int
}

func (f *fakeImages) ImageStatus(_ context.Context, ref string) (*runtimeapi.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.present[ref] {
		return &runtimeapi.Image{Id: "sha256:" + ref, Size: 42}, nil
	}
	return nil, nil
}

func (f *fakeImages) PullImage(_ context.Context, ref string, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	f.mu.Lock()
	ch := f.block[ref]
	f.pulls++
	f.auths = append(f.auths, auth)
	f.mu.Unlock()
	if ch != nil {
		<-ch
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.pullable[ref] {
		return "", status.Errorf(codes.NotFound, "failed to pull and unpack image %q: not found", ref)
	}
	f.present[ref] = true
	return "sha256:" + ref, nil
}

func (f *fakeImages) pullCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pulls
}

type imageTest struct {
	t      *testing.T
	svc    *fakeImages
	m      *imageManager
	rec    *record.FakeRecorder
	clock  time.Time
	queued chan string
}

func newImageTest(t *testing.T, objs ...*corev1.Secret) *imageTest {
	it := &imageTest{t: t, svc: &fakeImages{present: map[string]bool{}, pullable: map[string]bool{}, block: map[string]chan struct{}{}},
		rec: record.NewFakeRecorder(100), clock: time.Unix(1_000_000, 0), queued: make(chan string, 100)}
	client := fake.NewClientset()
	for _, s := range objs {
		client.Tracker().Add(s)
	}
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return it.clock }
	it.m = newImageManager(context.Background(), it.svc, client, it.rec, now, func(k string) { it.queued <- k })
	return it
}

// ensure runs one sync of c, and if a pull started, waits for it.
func (it *imageTest) ensure(p *corev1.Pod) (*runtimeapi.Image, *podWork) {
	it.t.Helper()
	w := &podWork{waiting: map[string]*corev1.ContainerStateWaiting{}}
	img, _ := it.m.ensure(context.Background(), p, &p.Spec.Containers[0], w)
	return img, w
}

func (it *imageTest) waitQueued(want string) {
	it.t.Helper()
	select {
	case k := <-it.queued:
		if k != want {
			it.t.Fatalf("queued %q, want %q", k, want)
		}
	case <-time.After(5 * time.Second):
		it.t.Fatal("pod not queued after the pull")
	}
}

func (it *imageTest) events() []string {
	var out []string
	for {
		select {
		case e := <-it.rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func imagePod(name, image string, policy corev1.PullPolicy) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image, ImagePullPolicy: policy}}}}
}

func reason(w *podWork) string {
	if s := w.waiting["c"]; s != nil {
		return s.Reason
	}
	return ""
}

func TestEnsureImagePolicies(t *testing.T) {
	it := newImageTest(t)
	it.svc.present["here:1"] = true
	if img, _ := it.ensure(imagePod("p", "here:1", corev1.PullIfNotPresent)); img == nil {
		t.Fatal("IfNotPresent with the image present: not started")
	}
	if ev := it.events(); len(ev) != 1 || ev[0] != `Normal Pulled Container image "here:1" already present on machine` {
		t.Errorf("events %q", ev)
	}
	img, w := it.ensure(imagePod("p", "gone:1", corev1.PullNever))
	if img != nil || reason(w) != "ErrImageNeverPull" || w.waiting["c"].Message != `Container image "gone:1" is not present with pull policy of Never` {
		t.Errorf("Never, absent: %v %+v", img, w.waiting["c"])
	}
	if it.svc.pulls != 0 {
		t.Errorf("%d pulls, want none", it.svc.pulls)
	}
	// Always pulls even when present.
	it.svc.pullable["here:1"] = true
	if img, w := it.ensure(imagePod("p", "here:1", corev1.PullAlways)); img != nil || reason(w) != "ContainerCreating" {
		t.Fatalf("Always: %v %+v", img, w.waiting)
	}
	it.waitQueued("default/p")
	if img, _ := it.ensure(imagePod("p", "here:1", corev1.PullAlways)); img == nil || it.svc.pullCount() != 1 {
		t.Errorf("Always after the pull: %v, %d pulls", img, it.svc.pulls)
	}
	ev := strings.Join(it.events(), "\n")
	for _, want := range []string{"Warning ErrImageNeverPull", `Normal Pulling Pulling image "here:1"`,
		`Normal Pulled Successfully pulled image "here:1" in`, "Image size: 42 bytes."} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}

func TestEnsureImageBackOff(t *testing.T) {
	it := newImageTest(t)
	p := imagePod("p", "reg.example:5000/nope:1", corev1.PullIfNotPresent)
	var delays []time.Duration
	for i := range 7 {
		if _, w := it.ensure(p); reason(w) != "ContainerCreating" {
			t.Fatalf("round %d: %+v", i, w.waiting)
		}
		it.waitQueued("default/p")
		_, w := it.ensure(p)
		if reason(w) != "ErrImagePull" || !strings.Contains(w.waiting["c"].Message,
			`Failed to pull image "reg.example:5000/nope:1": rpc error: code = NotFound desc = failed to pull and unpack image`) {
			t.Fatalf("round %d after the pull: %+v", i, w.waiting["c"])
		}
		delays = append(delays, w.requeue)
		// Before the back-off ends: ImagePullBackOff, no pull.
		it.clock = it.clock.Add(w.requeue - time.Second)
		_, w = it.ensure(p)
		if reason(w) != "ImagePullBackOff" || !strings.HasPrefix(w.waiting["c"].Message, `Back-off pulling image "reg.example:5000/nope:1": ErrImagePull: Failed to pull image`) {
			t.Fatalf("round %d in back-off: %+v", i, w.waiting["c"])
		}
		if w.requeue != time.Second {
			t.Errorf("round %d: requeue in %v, want 1s", i, w.requeue)
		}
		it.clock = it.clock.Add(time.Second)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i := range want {
		if delays[i] != want[i] {
			t.Errorf("back-offs %v, want %v", delays, want)
			break
		}
	}
	if it.svc.pulls != 7 {
		t.Errorf("%d pulls, want 7", it.svc.pulls)
	}
	ev := strings.Join(it.events(), "\n")
	for _, want := range []string{"Warning Failed Failed to pull image", "Warning Failed Error: ErrImagePull", `Normal BackOff Back-off pulling image "reg.example:5000/nope:1"`} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}

// A pull that hangs holds up only its own pod.
func TestEnsureImageSlowPullDoesNotBlock(t *testing.T) {
	it := newImageTest(t)
	release := make(chan struct{})
	it.svc.block["slow:1"] = release
	it.svc.pullable["slow:1"] = true
	it.svc.pullable["fast:1"] = true
	slow := imagePod("slow", "slow:1", corev1.PullIfNotPresent)
	slow.UID = "uid-slow"
	if _, w := it.ensure(slow); reason(w) != "ContainerCreating" {
		t.Fatalf("slow: %+v", w.waiting)
	}
	fast := imagePod("fast", "fast:1", corev1.PullIfNotPresent)
	fast.UID = "uid-fast"
	done := make(chan struct{})
	go func() {
		defer close(done)
		it.ensure(fast)
		it.waitQueued("default/fast")
		if img, _ := it.ensure(fast); img == nil {
			t.Error("fast pod's image not ready")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a slow pull blocked another pod's")
	}
	// The slow pod keeps waiting without a second pull.
	if _, w := it.ensure(slow); reason(w) != "ContainerCreating" || it.svc.pullCount() > 2 {
		t.Errorf("slow while pulling: %+v, %d pulls", w.waiting, it.svc.pullCount())
	}
	close(release)
	it.waitQueued("default/slow")
	if img, _ := it.ensure(slow); img == nil {
		t.Error("slow pod's image not ready after the pull")
	}
}

func TestPullSecrets(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfgJSON := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "json", Namespace: "default"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"127.0.0.1:5000":{"auth":"` + b64("alice:s3cret") + `"},` +
			`"https://index.docker.io/v1/":{"username":"hub","password":"hubpw"}}}`)}}
	cfg := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Type: corev1.SecretTypeDockercfg,
		Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"http://127.0.0.1:5000/team":{"username":"bob","password":"pw2"}}`)}}
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque", Namespace: "default"}, Type: corev1.SecretTypeOpaque}
	secrets := []*corev1.Secret{cfgJSON, cfg, opaque}
	for _, tc := range []struct {
		image string
		users []string
	}{
		{"127.0.0.1:5000/busybox:1", []string{"alice"}},
		{"127.0.0.1:5000/team/app:2", []string{"alice", "bob"}},
		{"127.0.0.1:5001/busybox:1", nil},
		{"nginx", []string{"hub"}},
		{"docker.io/library/nginx:1.25", []string{"hub"}},
		{"quay.io/x/y:1", nil},
	} {
		var users []string
		for _, a := range pullAuths(secrets, tc.image) {
			users = append(users, a.Username)
			if a.Username == "alice" && a.Password != "s3cret" {
				t.Errorf("%s: alice's password %q", tc.image, a.Password)
			}
		}
		if strings.Join(users, ",") != strings.Join(tc.users, ",") {
			t.Errorf("%s: users %v, want %v", tc.image, users, tc.users)
		}
	}

	// Through the manager: the pod's secrets are read through the API; a
	// missing one is an event, and the pull goes on.
	it := newImageTest(t, cfgJSON)
	it.svc.pullable["127.0.0.1:5000/busybox:1"] = true
	p := imagePod("p", "127.0.0.1:5000/busybox:1", corev1.PullIfNotPresent)
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "json"}, {Name: "absent"}}
	it.ensure(p)
	it.waitQueued("default/p")
	if len(it.svc.auths) != 1 || it.svc.auths[0].GetUsername() != "alice" || it.svc.auths[0].GetPassword() != "s3cret" {
		t.Errorf("pull auths %+v", it.svc.auths)
	}
	if ev := strings.Join(it.events(), "\n"); !strings.Contains(ev, "Warning FailedToRetrieveImagePullSecret Unable to retrieve some image pull secrets (absent)") {
		t.Errorf("events:\n%s", ev)
	}
}

func TestPullPolicyDefault(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx": corev1.PullAlways, "nginx:latest": corev1.PullAlways, "nginx:1.25": corev1.PullIfNotPresent,
		"127.0.0.1:5000/busybox": corev1.PullAlways, "127.0.0.1:5000/busybox:1": corev1.PullIfNotPresent,
		"nginx@sha256:0123": corev1.PullIfNotPresent,
	} {
		if got := pullPolicy(&corev1.Container{Image: image}); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
	for image, want := range map[string][2]string{
		"nginx": {"docker.io", "library/nginx"}, "user/app:1": {"docker.io", "user/app"},
		"127.0.0.1:5000/a/b:1": {"127.0.0.1:5000", "a/b"}, "localhost/x": {"localhost", "x"}, "quay.io/x/y@sha256:ab": {"quay.io", "x/y"},
	} {
		if h, r := registryOf(image); h != want[0] || r != want[1] {
			t.Errorf("%s: %s %s, want %v", image, h, r, want)
		}
	}
}

// Outcomes and back-offs of pods that went away are forgotten.
func TestImageManagerForgets(t *testing.T) {
	it := newImageTest(t)
	gone := imagePod("gone", "nope:1", corev1.PullIfNotPresent)
	it.ensure(gone)
	it.waitQueued("default/gone")
	it.m.mu.Lock()
	n, b := len(it.m.pulls), len(it.m.backoff)
	it.m.mu.Unlock()
	if n != 1 || b != 1 {
		t.Fatalf("after a failed pull: %d outcomes, %d back-offs", n, b)
	}
	it.clock = it.clock.Add(11 * time.Minute)
	it.svc.present["here:1"] = true
	it.ensure(imagePod("other", "here:1", corev1.PullIfNotPresent))
	it.m.mu.Lock()
	n, b = len(it.m.pulls), len(it.m.backoff)
	it.m.mu.Unlock()
	if n != 0 || b != 0 {
		t.Errorf("11 min later: %d outcomes, %d back-offs, want none", n, b)
	}
}
