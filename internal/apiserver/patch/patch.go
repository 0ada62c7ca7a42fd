package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
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
