package apiserver_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestListEncodingMatchesTypedList: the server writes lists from the
// watch cache by splicing each object's kept encoding; whatever the
// format, page or repetition, the response is byte for byte what
// encoding the decoded list gives (no kind/apiVersion in items, the
// list's metadata, continue and remainingItemCount as they should be).
func TestListEncodingMatchesTypedList(t *testing.T) {
	cs := srv.Client()
	ctx := framework.Context(t, time.Minute)
	ns := namespace(t, cs)
	for i := 0; i < 12; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%02d", i), Labels: map[string]string{"i": fmt.Sprint(i % 3)},
			Annotations: map[string]string{"html": "<a href=\"x\">&</a>"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// One pod also changed after its creation.
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "p-03", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{FieldManager: "other"}); err != nil {
		t.Fatal(err)
	}
	rc := cs.CoreV1().RESTClient()
	for _, mediaType := range []string{runtime.ContentTypeJSON, runtime.ContentTypeProtobuf} {
		info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
		enc := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
		dec := scheme.Codecs.UniversalDeserializer()
		check := func(what string, params map[string]string, wantItems int) *corev1.PodList {
			t.Helper()
			req := rc.Get().AbsPath("/api/v1/namespaces/"+ns+"/pods").SetHeader("Accept", mediaType)
			for k, v := range params {
				req = req.Param(k, v)
			}
			raw, err := req.DoRaw(ctx)
			if err != nil {
				t.Fatalf("%s %s: %v", mediaType, what, err)
			}
			obj, _, err := dec.Decode(raw, nil, nil)
			if err != nil {
				t.Fatalf("%s %s: decode: %v", mediaType, what, err)
			}
			list, ok := obj.(*corev1.PodList)
			if !ok {
				t.Fatalf("%s %s: decoded a %T", mediaType, what, obj)
			}
			var again bytes.Buffer
			if err := enc.Encode(list, &again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, again.Bytes()) {
				t.Errorf("%s %s: the response is not the typed list's encoding:\n got %q\nwant %q", mediaType, what, raw, again.Bytes())
			}
			if len(list.Items) != wantItems {
				t.Errorf("%s %s: %d items, want %d", mediaType, what, len(list.Items), wantItems)
			}
			for _, p := range list.Items {
				if len(p.ManagedFields) == 0 || p.Kind != "" {
					t.Errorf("%s %s: item %s has kind %q, %d managedFields", mediaType, what, p.Name, p.Kind, len(p.ManagedFields))
				}
			}
			return list
		}
		check("first list", nil, 12)
		check("second list", nil, 12)
		check("list at 0", map[string]string{"resourceVersion": "0"}, 12)
		check("label selector", map[string]string{"labelSelector": "i=1"}, 4)
		page := check("first page", map[string]string{"limit": "5"}, 5)
		if page.Continue == "" || page.RemainingItemCount == nil || *page.RemainingItemCount != 7 {
			t.Errorf("%s first page: continue %q, remainingItemCount %v", mediaType, page.Continue, page.RemainingItemCount)
		}
		check("second page", map[string]string{"limit": "5", "continue": page.Continue}, 5)
		check("empty", map[string]string{"labelSelector": "none=here"}, 0)
	}
}
