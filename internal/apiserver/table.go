package apiserver

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// defaultTable prints NAME and Created At, like kube-apiserver's default
// table for resources without printers.
type defaultTable struct{}

func (defaultTable) ColumnDefinitions() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."},
		{Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."},
	}
}

func (defaultTable) Cells(obj runtime.Object) ([]interface{}, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format(time.RFC3339)}, nil
}

func (r *resource) table() registry.TableConvertor {
	if r.Table != nil {
		return r.Table
	}
	return defaultTable{}
}

// convertAs converts an object or list for an as= media type.
func (s *Server) convertAs(r *http.Request, res *resource, mt mediaType, obj runtime.Object) (runtime.Object, error) {
	switch mt.As {
	case "Table":
		var opts metav1.TableOptions
		if err := decodeQuery(r.URL.Query(), &opts); err != nil {
			return nil, err
		}
		return s.toTable(res, obj, opts.IncludeObject, true)
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		gv := schema.GroupVersion{Group: "meta.k8s.io", Version: mt.Ver}
		if meta.IsListType(obj) {
			items, err := meta.ExtractList(obj)
			if err != nil {
				return nil, err
			}
			out := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: gv.String(), Kind: "PartialObjectMetadataList"}}
			if lm, err := meta.ListAccessor(obj); err == nil {
				out.ResourceVersion, out.Continue, out.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
			}
			for _, item := range items {
				p, err := partialMetadata(item, res)
				if err != nil {
					return nil, err
				}
				out.Items = append(out.Items, *p)
			}
			return out, nil
		}
		return partialMetadata(obj, res)
	}
	return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported conversion %q", mt.As))
}

func partialMetadata(obj runtime.Object, res *resource) (*metav1.PartialObjectMetadata, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	p := meta.AsPartialObjectMetadata(m)
	p.TypeMeta = metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}
	return p, nil
}

// toTable builds a Table of obj (one object or a list).
func (s *Server) toTable(res *resource, obj runtime.Object, include metav1.IncludeObjectPolicy, headers bool) (*metav1.Table, error) {
	tc := res.table()
	table := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}}
	if headers {
		table.ColumnDefinitions = tc.ColumnDefinitions()
	}
	var items []runtime.Object
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
		if lm, err := meta.ListAccessor(obj); err == nil {
			table.ResourceVersion, table.Continue, table.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
		}
	} else {
		items = []runtime.Object{obj}
		if m, err := meta.Accessor(obj); err == nil {
			table.ResourceVersion = m.GetResourceVersion()
		}
	}
	table.Rows = make([]metav1.TableRow, 0, len(items))
	for _, item := range items {
		cells, err := tc.Cells(item)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("print %s: %w", res.gr, err))
		}
		row := metav1.TableRow{Cells: cells}
		switch include {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			raw, err := s.encodeJSON(res.GroupVersion(), item)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		default:
			p, err := partialMetadata(item, res)
			if err != nil {
				return nil, err
			}
			raw, err := s.encodeJSON(metav1.SchemeGroupVersion, p)
			if err != nil {
				return nil, err
			}
			row.Object.Raw = raw
		}
		table.Rows = append(table.Rows, row)
	}
	return table, nil
}

func (s *Server) encodeJSON(gv schema.GroupVersion, obj runtime.Object) ([]byte, error) {
	info, _ := s.codecs.serializerFor(runtime.ContentTypeJSON)
	var buf bytes.Buffer
	if err := encodeObject(info, gv, obj, &buf); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
