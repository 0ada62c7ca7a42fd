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

// generatedName returns the one token volume name that data (JSON) holds,
// or "" when it holds none, several, or the placeholder itself. Only a
// single such name is renamed, so that the order of keyed list entries
// (sorted by their keys) cannot depend on it.
func generatedName(data []byte) string {
	if bytes.Contains(data, tokenVolumePlaceholder) {
		return ""
	}
	name := ""
	rest := data
	for {
		i := bytes.Index(rest, tokenVolumePrefix)
		if i < 0 {
			return name
		}
		j := i + len(tokenVolumePrefix)
		k := j
		for k < len(rest) && (rest[k] >= 'a' && rest[k] <= 'z' || rest[k] >= '0' && rest[k] <= '9') {
			k++
		}
		if k == j || k >= len(rest) || rest[k] != '"' && rest[k] != '\\' {
			return "" // not a whole JSON string value (or an escaped one in fieldsV1)
		}
		n := string(rest[i:k])
		if name != "" && n != name {
			return ""
		}
		name = n
		rest = rest[k:]
	}
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
