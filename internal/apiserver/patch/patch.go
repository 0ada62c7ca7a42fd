package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	sigsjson "sigs.k8s.io/json"
)

// MaxJSONPatchOperations is upstream's limit on operations in one JSON patch.
const MaxJSONPatchOperations = 10000

// Apply applies patchBody of type pt to current (JSON) and returns the
// patched JSON. schemaObj (an empty typed object) gives the strategic merge
// schema. Errors are API errors: 400 for a malformed patch, 422 for one that
// cannot be applied, 415 for an unknown type.
func Apply(pt types.PatchType, current, patchBody []byte, schemaObj runtime.Object) ([]byte, error) {
	switch pt {
	case types.JSONPatchType:
		var ops []json.RawMessage
		if err := json.Unmarshal(patchBody, &ops); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		if len(ops) > MaxJSONPatchOperations {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", MaxJSONPatchOperations, len(ops)))
		}
		p, err := jsonpatch.DecodePatch(patchBody)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		out, err := p.Apply(current)
		if err != nil {
			return nil, unprocessable(err.Error())
		}
		return out, nil
	case types.MergePatchType:
		if !isJSONObject(patchBody) {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %s", describeJSONError(patchBody)))
		}
		out, err := jsonpatch.MergePatch(current, patchBody)
		if err != nil {
			if errors.Is(err, jsonpatch.ErrBadJSONPatch) || errors.Is(err, jsonpatch.ErrBadJSONDoc) {
				return nil, apierrors.NewBadRequest(err.Error())
			}
			return nil, unprocessable(err.Error())
		}
		return out, nil
	case types.StrategicMergePatchType:
		var patchMap map[string]interface{}
		if err := json.Unmarshal(patchBody, &patchMap); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		if patchMap == nil {
			return nil, apierrors.NewBadRequest("error decoding patch: the patch must be a JSON object")
		}
		meta, err := strategicpatch.NewPatchMetaFromStruct(schemaObj)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		out, err := strategicpatch.StrategicMergePatchUsingLookupPatchMeta(current, patchBody, meta)
		if err != nil {
			return nil, smpError(err)
		}
		return out, nil
	}
	return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", schema.GroupResource{}, "",
		fmt.Sprintf("unsupported patch type %q", pt), 0, false)
}

func smpError(err error) error {
	switch {
	case errors.Is(err, mergepatch.ErrBadJSONDoc), errors.Is(err, mergepatch.ErrBadPatchFormatForPrimitiveList),
		errors.Is(err, mergepatch.ErrBadPatchFormatForRetainKeys), errors.Is(err, mergepatch.ErrBadPatchFormatForSetElementOrderList),
		errors.Is(err, mergepatch.ErrUnsupportedStrategicMergePatchFormat):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, mergepatch.ErrNoListOfLists), errors.Is(err, mergepatch.ErrPatchContentNotMatchRetainKeys):
		return unprocessable(err.Error())
	}
	// Type mismatches between patch and object (a string where a map is
	// expected, ...) are the client's fault.
	return unprocessable(err.Error())
}

func unprocessable(msg string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", msg, 0, false)
}

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

func describeJSONError(b []byte) string {
	var v interface{}
	if err := json.Unmarshal(b, &v); err != nil {
		return err.Error()
	}
	return "the patch must be a JSON object"
}

// StrategicStatus applies a strategic merge patch that changes only
// .status (the scheduler's and kubelets' status writes) to the typed
// object current, without the JSON round trip of the whole object: the
// status alone is encoded, merged with the patch's schema for it, and
// decoded into a copy of current. The result equals Apply's on the
// object's JSON form: the rest of the object is what the round trip
// would give back (stored objects carry nothing JSON would change). It
// reports false, leaving the caller to Apply, for any other patch, any
// error, and a result with unknown or duplicate fields (Apply's path
// gives their errors or warnings).
func StrategicStatus(current runtime.Object, gvk schema.GroupVersionKind, patchBody []byte, schemaObj runtime.Object) (runtime.Object, bool) {
	var patchMap map[string]interface{}
	if err := json.Unmarshal(patchBody, &patchMap); err != nil || len(patchMap) != 1 {
		return nil, false
	}
	statusPatch, ok := patchMap["status"].(map[string]interface{})
	if !ok {
		return nil, false
	}
	cv := reflect.ValueOf(current)
	if cv.Kind() != reflect.Pointer || cv.IsNil() || cv.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	status := cv.Elem().FieldByName("Status")
	if !status.IsValid() || status.Kind() != reflect.Struct {
		return nil, false
	}
	statusJSON, err := json.Marshal(status.Interface())
	if err != nil {
		return nil, false
	}
	var statusMap map[string]interface{}
	if err := utiljson.Unmarshal(statusJSON, &statusMap); err != nil || statusMap == nil {
		return nil, false
	}
	meta, err := strategicpatch.NewPatchMetaFromStruct(schemaObj)
	if err != nil {
		return nil, false
	}
	statusMeta, _, err := meta.LookupPatchMetadataForStruct("status")
	if err != nil {
		return nil, false
	}
	merged, err := strategicpatch.StrategicMergeMapPatchUsingLookupPatchMeta(statusMap, statusPatch, statusMeta)
	if err != nil {
		return nil, false
	}
	mergedJSON, err := json.Marshal(merged)
	if err != nil {
		return nil, false
	}
	out := current.DeepCopyObject()
	ov := reflect.ValueOf(out).Elem()
	next := reflect.New(status.Type())
	if strict, err := sigsjson.UnmarshalStrict(mergedJSON, next.Interface()); err != nil || len(strict) > 0 {
		return nil, false
	}
	ov.FieldByName("Status").Set(next.Elem())
	out.GetObjectKind().SetGroupVersionKind(gvk)
	return out, true
}
