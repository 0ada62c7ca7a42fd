package fieldmanager

import (
	"bytes"
	"crypto/sha256"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cacheKey keys the create and update caches. rename is the generated
// name of a pod's service account token volume (kube-api-access-xxxxx,
// random per pod as upstream's ServiceAccount admission makes it), which
// the key's JSON carries as a placeholder: pods that differ only there
// share an entry, whose fieldsV1 store the placeholder too and get the
// pod's own name back when applied.
type cacheKey struct {
	sum    [sha256.Size]byte
	rename string
}

var (
	tokenVolumePrefix      = []byte("kube-api-access-")
	tokenVolumePlaceholder = []byte("kube-api-access-*****")
)

// generatedName returns the one token volume name that data (a shape's
// JSON or protobuf form) holds, or "" when it holds none, several, or the
// placeholder itself. Only a single such name is renamed, so that the order
// of keyed list entries (sorted by their keys) cannot depend on it.
func generatedName(data []byte) string {
	if bytes.Contains(data, tokenVolumePlaceholder) {
		return ""
	}
	proto := bytes.HasPrefix(data, protoShapeMark)
	name := ""
	for off := 0; ; {
		i := bytes.Index(data[off:], tokenVolumePrefix)
		if i < 0 {
			return name
		}
		i += off
		n, end := tokenName(data, i, proto)
		if n == "" || name != "" && n != name {
			return ""
		}
		name, off = n, end
	}
}

// tokenName returns the name at data[i] if it is a whole string value, and
// where it ends: a JSON string's, followed by a quote (or an escaped one in
// fieldsV1); in a protobuf shape, also a string field's, exactly as long as
// the length byte before it says.
func tokenName(data []byte, i int, proto bool) (string, int) {
	j := i + len(tokenVolumePrefix)
	if proto && i > 0 {
		if l := int(data[i-1]); l > len(tokenVolumePrefix) && l < 0x80 && i+l <= len(data) && nameChars(data[j:i+l]) {
			return string(data[i : i+l]), i + l
		}
		if data[i-1] != '"' {
			return "", 0
		}
	}
	k := j
	for k < len(data) && isNameChar(data[k]) {
		k++
	}
	if k == j || k >= len(data) || data[k] != '"' && data[k] != '\\' {
		return "", 0 // not a whole JSON string value (or an escaped one in fieldsV1)
	}
	return string(data[i:k]), k
}

func isNameChar(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func nameChars(b []byte) bool {
	for _, c := range b {
		if !isNameChar(c) {
			return false
		}
	}
	return true
}

// withPlaceholder replaces name by the placeholder in data, which the
// caller owns: in place when they are as long (a generated name always is).
func withPlaceholder(data []byte, name string) []byte {
	if name == "" {
		return data
	}
	if len(name) != len(tokenVolumePlaceholder) {
		return bytes.ReplaceAll(data, []byte(name), tokenVolumePlaceholder)
	}
	for rest := data; ; {
		i := bytes.Index(rest, []byte(name))
		if i < 0 {
			return data
		}
		copy(rest[i:], tokenVolumePlaceholder)
		rest = rest[i+len(name):]
	}
}

// renameFields replaces from by to in the entries' fieldsV1 (copies).
func renameFields(fields []metav1.ManagedFieldsEntry, from, to []byte) {
	for i := range fields {
		if f := fields[i].FieldsV1; f != nil && bytes.Contains(f.Raw, from) {
			fields[i].FieldsV1 = &metav1.FieldsV1{Raw: bytes.ReplaceAll(f.Raw, from, to)}
		}
	}
}
