package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/storage"
	"github.com/skiff-sh/skiff/internal/storage/cacher"
)

// get serves GET of one object.
func (s *Server) get(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	var opts metav1.GetOptions
	if err := decodeQuery(r.URL.Query(), &opts); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	obj := res.New()
	if err := res.store.Get(r.Context(), res.key(info.Namespace, info.Name), storage.GetOptions{ResourceVersion: opts.ResourceVersion}, obj); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	s.respond(w, r, res, http.StatusOK, obj)
}

// listOptions parses and checks the list/watch query.
func (s *Server) listOptions(r *http.Request, res *resource) (metav1.ListOptions, storage.ListOptions, error) {
	var opts metav1.ListOptions
	if err := decodeQuery(r.URL.Query(), &opts); err != nil {
		return opts, storage.ListOptions{}, err
	}
	label := labels.Everything()
	if opts.LabelSelector != "" {
		sel, err := labels.Parse(opts.LabelSelector)
		if err != nil {
			return opts, storage.ListOptions{}, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
		label = sel
	}
	field := fields.Everything()
	if opts.FieldSelector != "" {
		sel, err := fields.ParseSelector(opts.FieldSelector)
		if err != nil {
			return opts, storage.ListOptions{}, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		if err := res.checkFieldSelector(sel); err != nil {
			return opts, storage.ListOptions{}, apierrors.NewBadRequest(err.Error())
		}
		field = sel
	}
	if opts.Limit < 0 {
		return opts, storage.ListOptions{}, apierrors.NewBadRequest("limit must not be negative")
	}
	switch opts.ResourceVersionMatch {
	case "", metav1.ResourceVersionMatchExact, metav1.ResourceVersionMatchNotOlderThan:
	default:
		return opts, storage.ListOptions{}, apierrors.NewBadRequest(fmt.Sprintf("unsupported resourceVersionMatch %q", opts.ResourceVersionMatch))
	}
	// The rules of upstream's ValidateListOptions.
	if opts.SendInitialEvents != nil {
		switch {
		case !opts.Watch:
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("sendInitialEvents is forbidden for list")
		case opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan:
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")
		case !opts.AllowWatchBookmarks:
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("sendInitialEvents requires setting allowWatchBookmarks to true")
		}
	} else if opts.ResourceVersionMatch != "" {
		switch {
		case opts.Watch:
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("resourceVersionMatch is forbidden for watch")
		case opts.ResourceVersion == "":
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
		case opts.Continue != "":
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("resourceVersionMatch is forbidden when continue is provided")
		case opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact && opts.ResourceVersion == "0":
			return opts, storage.ListOptions{}, apierrors.NewBadRequest("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
		}
	}
	if opts.Continue != "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0" && !opts.Watch {
		return opts, storage.ListOptions{}, apierrors.NewBadRequest("specifying resource version is not allowed when using continue")
	}
	so := storage.ListOptions{
		ResourceVersion:      opts.ResourceVersion,
		ResourceVersionMatch: opts.ResourceVersionMatch,
		Recursive:            true,
		ProgressNotify:       opts.AllowWatchBookmarks,
		SendInitialEvents:    opts.SendInitialEvents,
		Predicate: storage.SelectionPredicate{
			Label:    label,
			Field:    field,
			GetAttrs: res.attrs,
			Limit:    opts.Limit,
			Continue: opts.Continue,
		},
	}
	return opts, so, nil
}

// list serves GET of a collection.
func (s *Server) list(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	opts, so, err := s.listOptions(r, res)
	if err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	if opts.Watch {
		s.watch(w, r, res, info)
		return
	}
	if cl, ok := res.store.(cachedLister); ok {
		if sinfo, mt, ok := s.codecs.negotiateOutput(r, acceptAs); ok && spliceFormat(sinfo, mt) {
			if sp, ok := newListSplice(res, sinfo); ok {
				page, served, err := cl.ListCached(r.Context(), res.listKey(info.Namespace), so)
				if err != nil {
					s.writeError(w, r, err, res.gr, "")
					return
				}
				if served {
					s.writeCachedList(w, r, res, sp, page)
					return
				}
			}
		}
	}
	list := res.NewList()
	if err := res.store.GetList(r.Context(), res.listKey(info.Namespace), so, list); err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	clearItemKinds(list)
	s.respond(w, r, res, http.StatusOK, list)
}

// writeCachedList writes a list page from the watch cache by splicing its
// items' cached encodings; items whose encodings are not in the expected
// shape make it encode the typed list instead.
func (s *Server) writeCachedList(w http.ResponseWriter, r *http.Request, res *resource, sp *listSplice, page *cacher.CachedList) {
	err := sp.write(w, http.StatusOK, page)
	if err == nil {
		return
	}
	if !errors.Is(err, errNotSpliceable) {
		s.log.Debug("write list", "err", err)
		return
	}
	list := res.NewList()
	items := make([]runtime.Object, len(page.Items))
	for i, it := range page.Items {
		if co, ok := it.(runtime.CacheableObject); ok {
			items[i] = co.GetObject()
		} else {
			items[i] = it
		}
	}
	if err := meta.SetList(list, items); err != nil {
		s.writeError(w, r, err, res.gr, "")
		return
	}
	clearItemKinds(list)
	if lm, err := meta.ListAccessor(list); err == nil {
		lm.SetResourceVersion(page.ResourceVersion)
		lm.SetContinue(page.Continue)
		lm.SetRemainingItemCount(page.RemainingItemCount)
	}
	s.respond(w, r, res, http.StatusOK, list)
}

// clearItemKinds empties the kind and apiVersion of a typed list's items
// (the store's decoded objects carry them): as upstream's lists, whose
// items come from internal objects, and as the spliced lists. Items of
// unstructured lists keep theirs.
func clearItemKinds(list runtime.Object) {
	if _, ok := list.(runtime.Unstructured); ok {
		return
	}
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
		return nil
	})
}

// respond writes an object or list of the resource in the negotiated
// form: the object itself, a Table, or PartialObjectMetadata(List).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, res *resource, code int, obj runtime.Object) {
	info, mt, ok := s.codecs.negotiateOutput(r, acceptAs)
	if !ok {
		s.writeNotAcceptable(w, r)
		return
	}
	out, gv := obj, res.GroupVersion()
	if mt.As != "" {
		converted, err := s.convertAs(r, res, mt, obj)
		if err != nil {
			s.writeError(w, r, err, res.gr, "")
			return
		}
		out, gv = converted, schema.GroupVersion{Group: mt.Group, Version: mt.Ver}
	}
	s.writeObjectWith(w, code, info, gv, out)
}

func (s *Server) writeNotAcceptable(w http.ResponseWriter, r *http.Request) {
	s.writeStatus(w, r, &metav1.Status{Code: http.StatusNotAcceptable, Reason: metav1.StatusReasonNotAcceptable,
		Message: "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"})
}

// acceptAs reports which as= conversions we serve.
func acceptAs(mt mediaType) bool {
	if mt.Group != "meta.k8s.io" || (mt.Ver != "v1" && mt.Ver != "v1beta1") {
		return false
	}
	switch mt.As {
	case "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
		return true
	}
	return false
}
