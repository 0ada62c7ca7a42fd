package etcd

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// The fast decode gives exactly what the codec's own path gives, and leaves
// everything else to it.
func TestStorageCodecDecodeMatchesCodec(t *testing.T) {
	now := metav1.NewTime(time.Unix(1700000000, 0))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"a": "b"},
			CreationTimestamp: now, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{}}`)}}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns"}}
	rev := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Revision: 2,
		Data: runtime.RawExtension{Raw: []byte(`{"spec":{}}`)}}
	tests := []struct {
		name  string
		gv    schema.GroupVersion
		obj   runtime.Object
		into  func() runtime.Object
		json  bool
		typed bool // the fast path applies
	}{
		{"pod", corev1.SchemeGroupVersion, pod, func() runtime.Object { return &corev1.Pod{} }, false, true},
		{"pod into a used object", corev1.SchemeGroupVersion, pod, func() runtime.Object {
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "old", Annotations: map[string]string{"x": "y"}}, Spec: corev1.PodSpec{NodeName: "n"}}
		}, false, true},
		{"deployment", appsv1.SchemeGroupVersion, deploy, func() runtime.Object { return &appsv1.Deployment{} }, false, true},
		{"json value", corev1.SchemeGroupVersion, pod, func() runtime.Object { return &corev1.Pod{} }, true, false},
		{"controller revision (raw data)", appsv1.SchemeGroupVersion, rev, func() runtime.Object { return &appsv1.ControllerRevision{} }, false, true},
		{"into unknown", corev1.SchemeGroupVersion, pod, func() runtime.Object { return &runtime.Unknown{} }, false, false},
		{"into another kind", corev1.SchemeGroupVersion, pod, func() runtime.Object { return &corev1.ConfigMap{} }, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if tc.json {
				var buf bytes.Buffer
				if err := scheme.Codecs.LegacyCodec(tc.gv).Encode(tc.obj, &buf); err != nil {
					t.Fatal(err)
				}
				data = buf.Bytes()
			} else {
				var buf bytes.Buffer
				if err := DefaultCodec(tc.gv).Encode(tc.obj, &buf); err != nil {
					t.Fatal(err)
				}
				data = buf.Bytes()
			}
			pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
			slow := scheme.Codecs.CodecForVersions(pb, scheme.Codecs.UniversalDeserializer(), tc.gv, tc.gv)
			want, wantGVK, wantErr := slow.Decode(data, nil, tc.into())

			probe := tc.into()
			_, typed, _ := decodeTyped(data, probe)
			if typed != tc.typed {
				t.Fatalf("fast path applies: %v, want %v", typed, tc.typed)
			}
			got, gotGVK, gotErr := DefaultCodec(tc.gv).Decode(data, nil, tc.into())
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("error %v, codec's %v", gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotGVK, wantGVK) {
				t.Fatalf("got %v %#v\nwant %v %#v", gotGVK, got, wantGVK, want)
			}
		})
	}
}

func TestParseUnknownRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{{0x0a}, {0x0a, 0x05, 0x01}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, _, _, ok := parseUnknown(b); ok {
			t.Errorf("%x parsed", b)
		}
		if _, ok, _ := decodeTyped(append(append([]byte(nil), protobufPrefix...), b...), &corev1.Pod{}); ok {
			t.Errorf("%x decoded", b)
		}
	}
}

// encode gives the codec's bytes, with the storage codec's allocator path
// and with any other encoder.
func TestEncodeMatchesCodec(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: "n"}}
	for _, c := range []runtime.Codec{DefaultCodec(corev1.SchemeGroupVersion), scheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion)} {
		var want bytes.Buffer
		if err := c.Encode(pod, &want); err != nil {
			t.Fatal(err)
		}
		got, err := encode(c, pod)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%T: got %q, want %q", c, got, want.Bytes())
		}
	}
	var w takeWriter
	a := []byte("ab")
	w.Write(a)
	w.Write([]byte("c"))
	a[0] = 'x'
	if string(w.data) != "abc" {
		t.Fatalf("takeWriter = %q after a second write", w.data)
	}
}
