package scheme

import (
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apidiscoveryv2beta1 "k8s.io/api/apidiscovery/v2beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1beta1 "k8s.io/apimachinery/pkg/apis/meta/v1beta1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

var (
	// Scheme knows every type the server serves.
	Scheme = runtime.NewScheme()
	// Codecs encodes and decodes JSON, YAML, protobuf and CBOR for Scheme.
	Codecs = serializer.NewCodecFactory(Scheme)
	// ParameterCodec decodes query parameters into option structs.
	ParameterCodec = runtime.NewParameterCodec(Scheme)
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(metav1.AddMetaToScheme(Scheme))
	utilruntime.Must(metav1beta1.AddMetaToScheme(Scheme))
	utilruntime.Must(apidiscoveryv2.AddToScheme(Scheme))
	utilruntime.Must(apidiscoveryv2beta1.AddToScheme(Scheme))
	// Option types (ListOptions, DeleteOptions, ...) for every version and
	// the unversioned group, so query parameters decode everywhere.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	// Clients also send options (DeleteOptions bodies) as meta.k8s.io/v1.
	metav1.AddToGroupVersion(Scheme, metav1.SchemeGroupVersion)
	utilruntime.Must(Scheme.SetVersionPriority(schema.GroupVersion{Version: "v1"}))
}
