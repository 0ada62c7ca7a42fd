package cacher

import (
	"bytes"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// TestCachingObjectEncodesOncePerFormat: watchers sharing one event get
// identical bytes, each format is encoded once, concurrently without
// races, and the shared object keeps its empty TypeMeta.
func TestCachingObjectEncodesOncePerFormat(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", ResourceVersion: "7"}}
	co := newCachingObject(pod)
	gv := schema.GroupVersion{Version: "v1"}
	var encoders []runtime.Encoder
	for _, mt := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mt)
		if !ok {
			t.Fatalf("no serializer for %s", mt)
		}
		encoders = append(encoders, scheme.Codecs.EncoderForVersion(info.Serializer, gv))
	}
	want := make([][]byte, len(encoders))
	for i, enc := range encoders {
		var b bytes.Buffer
		if err := enc.Encode(pod.DeepCopy(), &b); err != nil {
			t.Fatal(err)
		}
		want[i] = b.Bytes()
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		for i, enc := range encoders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b bytes.Buffer
				if err := enc.Encode(co, &b); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(b.Bytes(), want[i]) {
					t.Errorf("encoder %d: got %q, want %q", i, b.Bytes(), want[i])
				}
			}()
		}
	}
	wg.Wait()
	if len(co.enc) != len(encoders) {
		t.Fatalf("%d cached encodings, want %d", len(co.enc), len(encoders))
	}
	if pod.Kind != "" || pod.APIVersion != "" {
		t.Fatalf("shared object's TypeMeta was set: %+v", pod.TypeMeta)
	}
	cp := co.GetObject().(*corev1.Pod)
	cp.Name = "changed"
	if pod.Name != "p" {
		t.Fatal("GetObject did not return a copy")
	}
}

// TestCachingObjectSharedAndCopies: GetObject hands out a copy to change,
// SharedObject the shared object itself, for readers.
func TestCachingObjectSharedAndCopies(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}}}
	co := newCachingObject(pod)
	if co.SharedObject() != runtime.Object(pod) {
		t.Fatal("SharedObject is not the shared object")
	}
	cp := co.GetObject().(*corev1.Pod)
	cp.Labels["a"] = "changed"
	if pod.Labels["a"] != "b" {
		t.Fatal("a change to GetObject's copy reached the shared object")
	}
}

// TestEncodingBudget: a current object's encodings count against the
// cache's budget until it is released; once the budget is spent, new
// encodings are written but not kept.
func TestEncodingBudget(t *testing.T) {
	info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	enc := scheme.Codecs.EncoderForVersion(info.Serializer, schema.GroupVersion{Version: "v1"})
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}
	}
	b := &encodingBudget{limit: 1}
	a := newHeldObject(pod("a"), b)
	var out bytes.Buffer
	if err := enc.Encode(a, &out); err != nil {
		t.Fatal(err)
	}
	used := b.used.Load()
	if used <= 0 || len(a.enc) != 1 {
		t.Fatalf("first encoding: budget used %d, kept %d", used, len(a.enc))
	}
	c := newHeldObject(pod("c"), b) // the budget is spent now
	for i := 0; i < 2; i++ {
		out.Reset()
		if err := enc.Encode(c, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out.Bytes(), []byte(`"name":"c"`)) {
			t.Fatalf("encoding %q", out.Bytes())
		}
	}
	if len(c.enc) != 0 || b.used.Load() != used {
		t.Errorf("over budget: kept %d encodings, used %d (was %d)", len(c.enc), b.used.Load(), used)
	}
	a.release()
	if b.used.Load() != 0 {
		t.Errorf("after release: used %d", b.used.Load())
	}
	out.Reset()
	if err := enc.Encode(a, &out); err != nil || b.used.Load() != 0 {
		t.Errorf("a released object's encoding counted: used %d, err %v", b.used.Load(), err)
	}
}
