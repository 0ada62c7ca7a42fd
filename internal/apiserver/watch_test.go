package apiserver

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// TestLoopbackWatchesWithoutManagedFields: only a loopback built with the
// option marks its requests; nothing a network client sends can.
func TestLoopbackWatchesWithoutManagedFields(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "admin"}}
	for _, c := range []struct {
		opts []LoopbackOption
		want bool
	}{{nil, false}, {[]LoopbackOption{WatchesWithoutManagedFields()}, true}} {
		got := make(chan bool, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- watchOmitsManagedFields(r.Context()) })
		resp, err := (&http.Client{Transport: LoopbackTransport(h, cert, c.opts...)}).Get("https://127.0.0.1:6443/api/v1/pods?watch=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if g := <-got; g != c.want {
			t.Errorf("options %d: omits managedFields %v, want %v", len(c.opts), g, c.want)
		}
	}
}

// cacheable stands for a watch cache object: encodings kept per
// identifier, the encoder given a copy of the top-level struct.
type cacheable struct {
	runtime.Object
	mu  sync.Mutex
	enc map[runtime.Identifier][]byte
}

func (c *cacheable) CacheEncode(id runtime.Identifier, encode func(runtime.Object, io.Writer) error, w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.enc == nil {
		c.enc = map[runtime.Identifier][]byte{}
	}
	if _, ok := c.enc[id]; !ok {
		p := *c.Object.(*corev1.Pod)
		var buf bytes.Buffer
		if err := encode(&p, &buf); err != nil {
			return err
		}
		c.enc[id] = buf.Bytes()
	}
	_, err := w.Write(c.enc[id])
	return err
}

func (c *cacheable) GetObject() runtime.Object { return c.Object.DeepCopyObject() }

func TestWithoutManagedFieldsEncoder(t *testing.T) {
	mf := []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", ManagedFields: mf}}
	full := scheme.Codecs.EncoderForVersion(protobuf.NewSerializer(scheme.Scheme, scheme.Scheme), corev1.SchemeGroupVersion)
	stripped := withoutManagedFields{full}
	if stripped.Identifier() == full.Identifier() {
		t.Fatal("both encodings share an identifier")
	}
	decode := func(data []byte) *corev1.Pod {
		t.Helper()
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return obj.(*corev1.Pod)
	}
	shared := &cacheable{Object: pod}
	for _, obj := range []runtime.Object{pod, shared} {
		var a, b bytes.Buffer
		if err := stripped.EncodeWithAllocator(obj, &a, &runtime.Allocator{}); err != nil {
			t.Fatal(err)
		}
		if err := full.Encode(obj, &b); err != nil {
			t.Fatal(err)
		}
		if p := decode(a.Bytes()); p.Name != "p" || p.ManagedFields != nil {
			t.Errorf("%T: stripped encoding has %+v", obj, p.ObjectMeta)
		}
		if p := decode(b.Bytes()); len(p.ManagedFields) != 1 {
			t.Errorf("%T: full encoding lost managedFields: %+v", obj, p.ObjectMeta)
		}
		if len(pod.ManagedFields) != 1 {
			t.Fatalf("%T: the shared object changed", obj)
		}
	}
	if len(shared.enc) != 2 {
		t.Errorf("cached encodings %d, want 2", len(shared.enc))
	}
	u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "u", "managedFields": []any{map[string]any{"manager": "m"}}}}}
	if stripManagedFields(u) != runtime.Object(u) || len(u.GetManagedFields()) != 1 {
		t.Error("an unstructured object was changed or copied")
	}
}
