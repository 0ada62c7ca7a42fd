package apiserver

import (
	"bytes"
	"net/http/httptest"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/api/scheme"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
)

// TestListSplice: a list spliced from its items' (cached) encodings
// decodes to the same list as the typed list's encoding, in JSON and
// protobuf, and is in fact byte for byte the same.
func TestListSplice(t *testing.T) {
	mf := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{"f:app":{}}}}`)}}}
	pod := func(name string, withMF bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", ResourceVersion: "7", UID: "u-" + "x",
			Labels: map[string]string{"app": "a<b>&"}}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if withMF {
			p.ManagedFields = mf
		}
		return p
	}
	remaining := int64(3)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", ResourceVersion: "9"}}
	cases := []struct {
		name     string
		gv       schema.GroupVersion
		itemKind string
		list     func() runtime.Object
		items    func() []runtime.Object // fresh wrappers per format
		cont     string
		rem      *int64
	}{
		{"empty", corev1.SchemeGroupVersion, "Pod", func() runtime.Object { return &corev1.PodList{} }, func() []runtime.Object { return nil }, "", nil},
		{"cached pods", corev1.SchemeGroupVersion, "Pod", func() runtime.Object { return &corev1.PodList{} }, func() []runtime.Object {
			return []runtime.Object{&cacheable{Object: pod("a", true)}, &cacheable{Object: pod("b", false)}, &cacheable{Object: pod("c", true)}}
		}, "", nil},
		{"continue", corev1.SchemeGroupVersion, "Pod", func() runtime.Object { return &corev1.PodList{} }, func() []runtime.Object {
			return []runtime.Object{&cacheable{Object: pod("a", false)}}
		}, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIsInN0YXJ0IjoiYVx1MDAwMCJ9", &remaining},
		{"plain objects of a group", appsv1.SchemeGroupVersion, "Deployment", func() runtime.Object { return &appsv1.DeploymentList{} }, func() []runtime.Object {
			return []runtime.Object{dep.DeepCopy(), dep.DeepCopy()}
		}, "", nil},
	}
	for _, c := range cases {
		for _, mediaType := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
			t.Run(c.name+" "+mediaType, func(t *testing.T) {
				info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
				if !ok {
					t.Fatal("no serializer")
				}
				listKind := c.itemKind + "List"
				items := c.items()
				page := &cacher.CachedList{Items: items, ResourceVersion: "12", Continue: c.cont, RemainingItemCount: c.rem}
				// Twice: the second time from the cached encodings.
				var got []byte
				for i := 0; i < 2; i++ {
					rec := httptest.NewRecorder()
					sp := &listSplice{info: info, gv: c.gv, itemKind: c.itemKind, listKind: listKind}
					if err := sp.write(rec, 200, page); err != nil {
						t.Fatal(err)
					}
					if rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
						t.Errorf("Content-Length %s, body %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
					}
					if i == 1 && !bytes.Equal(got, rec.Body.Bytes()) {
						t.Error("second list differs from the first")
					}
					got = rec.Body.Bytes()
				}
				list := c.list()
				var plain []runtime.Object
				for _, it := range items {
					if co, ok := it.(*cacheable); ok {
						plain = append(plain, co.GetObject())
					} else {
						plain = append(plain, it)
					}
				}
				if err := meta.SetList(list, plain); err != nil {
					t.Fatal(err)
				}
				lm, _ := meta.ListAccessor(list)
				lm.SetResourceVersion("12")
				lm.SetContinue(c.cont)
				lm.SetRemainingItemCount(c.rem)
				var want bytes.Buffer
				if err := encodeObject(info, c.gv, list, &want); err != nil {
					t.Fatal(err)
				}
				dec := scheme.Codecs.UniversalDeserializer()
				gotObj, _, err := dec.Decode(got, nil, nil)
				if err != nil {
					t.Fatalf("decode spliced list: %v\n%q", err, got)
				}
				wantObj, _, err := dec.Decode(want.Bytes(), nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !apiequality.Semantic.DeepEqual(gotObj, wantObj) {
					t.Errorf("decoded lists differ:\n got %#v\nwant %#v", gotObj, wantObj)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("bytes differ:\n got %q\nwant %q", got, want.Bytes())
				}
			})
		}
	}
}

func TestUnknownRawRejectsOtherShapes(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("{}"), append(append([]byte(nil), protobufMagic...), 0x08, 0x01), append(append([]byte(nil), protobufMagic...), 0x12, 0x05, 0x01)} {
		if _, err := unknownRaw(b); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
}
