package etcd

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/skiff-sh/skiff/internal/api/scheme"
)

// DefaultCodec stores objects of gv as protobuf (with the Kubernetes magic
// prefix, as kube-apiserver does) and decodes protobuf or JSON.
func DefaultCodec(gv schema.GroupVersion) runtime.Codec {
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	return scheme.Codecs.CodecForVersions(pb, scheme.Codecs.UniversalDeserializer(), gv, gv)
}
