package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/apiserver/patch"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// serveSubresource routes .../{name}/{subresource}.
func (s *Server) serveSubresource(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Name == "" {
		s.serveNotFound(w, r)
		return
	}
	sub := res.Subresources[info.Subresource]
	switch info.Subresource {
	case "status", "approval":
		// approval (CertificateSigningRequests) writes conditions through
		// its own strategy, otherwise as status does.
		s.serveStatus(w, r, res, info, sub)
	case "scale":
		s.serveScale(w, r, res, info)
	case "binding":
		s.serveBinding(w, r, res, info)
	case "eviction":
		s.serveEviction(w, r, res, info)
	case "finalize":
		s.serveFinalize(w, r, res, info)
	case "log", "exec", "attach", "portforward":
		s.servePodConnect(w, r, res, info)
	case "proxy":
		s.serveNodeProxy(w, r, res, info)
	case "token":
		s.serveTokenRequest(w, r, res, info)
	default:
		s.serveNotFound(w, r)
	}
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo, sub *registry.Subresource) {
	strategy := sub.Strategy
	if strategy == nil {
		strategy = &registry.StatusStrategy{Parent: res.Strategy}
	}
	switch info.Verb {
	case "get":
		s.get(w, r, res, info)
	case "update":
		obj, params, err := s.decodeWrite(w, r, res.gvk, res.New())
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		if err := checkNameAndNamespace(obj, res, info); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		manager := managerName(r, params)
		out, _, err := s.updateObject(r.Context(), res, info, strategy, params.DryRun, false,
			func(current runtime.Object, exists bool) (runtime.Object, error) {
				return s.trackUpdate(res, info.Subresource, current, obj.DeepCopyObject(), manager)
			})
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		s.respond(w, r, res, http.StatusOK, out)
	case "patch":
		s.patchWith(w, r, res, info, strategy)
	default:
		s.methodNotAllowed(w, r)
	}
}

// --- scale ---

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	switch info.Verb {
	case "get":
		obj := res.New()
		if err := res.store.Get(r.Context(), res.key(info.Namespace, info.Name), storage.GetOptions{}, obj); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		sc, err := toScale(obj)
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		s.writeObject(w, r, http.StatusOK, sc)
	case "update", "patch":
		params, err := parseWriteParams(r)
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		var p *patchRequest
		var body []byte
		if info.Verb == "patch" {
			if p, err = s.parsePatch(w, r); err != nil {
				s.writeError(w, r, err, res.gr, info.Name)
				return
			}
			if p.typ == types.ApplyYAMLPatchType {
				s.writeError(w, r, apierrors.NewBadRequest("apply patches are not supported on scale"), res.gr, info.Name)
				return
			}
		} else if body, err = readBody(w, r); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		manager := managerName(r, params)
		var newScale *autoscalingv1.Scale
		out, _, err := s.updateObject(r.Context(), res, info, res.Strategy, params.DryRun, false,
			func(current runtime.Object, exists bool) (runtime.Object, error) {
				cur, err := toScale(current)
				if err != nil {
					return nil, err
				}
				var sc *autoscalingv1.Scale
				if p != nil {
					curJSON, err := s.encodeJSON(autoscalingv1.SchemeGroupVersion, cur)
					if err != nil {
						return nil, err
					}
					patched, err := patch.Apply(p.typ, curJSON, p.body, &autoscalingv1.Scale{})
					if err != nil {
						return nil, err
					}
					o, err := s.decodeBytes(w, runtime.ContentTypeJSON, patched, scaleGVK, &autoscalingv1.Scale{}, params.FieldValidation)
					if err != nil {
						return nil, err
					}
					sc = o.(*autoscalingv1.Scale)
				} else {
					o, err := s.decodeInto(w, r, body, scaleGVK, &autoscalingv1.Scale{}, params.FieldValidation)
					if err != nil {
						return nil, err
					}
					sc = o.(*autoscalingv1.Scale)
				}
				if sc.Name != info.Name {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", sc.Name, info.Name))
				}
				if sc.Spec.Replicas < 0 {
					return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), info.Name, fieldErrs("spec.replicas", sc.Spec.Replicas, "must be greater than or equal to 0"))
				}
				if sc.ResourceVersion != "" && sc.ResourceVersion != cur.ResourceVersion {
					return nil, apierrors.NewConflict(res.gr, info.Name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
				}
				next := current.DeepCopyObject()
				setReplicas(next, sc.Spec.Replicas)
				newScale = sc
				return s.trackUpdate(res, "scale", current, next, manager)
			})
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		_ = newScale
		sc, err := toScale(out)
		if err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
		s.writeObject(w, r, http.StatusOK, sc)
	default:
		s.methodNotAllowed(w, r)
	}
}

// toScale reads spec.replicas, status.replicas and the selector of a
// scalable object.
func toScale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
	}
	v := reflect.ValueOf(obj).Elem()
	spec, status := v.FieldByName("Spec"), v.FieldByName("Status")
	if spec.IsValid() {
		if rep := spec.FieldByName("Replicas"); rep.IsValid() {
			if rep.Kind() == reflect.Pointer {
				if rep.IsNil() {
					sc.Spec.Replicas = 1
				} else {
					sc.Spec.Replicas = int32(rep.Elem().Int())
				}
			}
		}
		if sel := spec.FieldByName("Selector"); sel.IsValid() {
			switch s := sel.Interface().(type) {
			case *metav1.LabelSelector:
				if ls, err := metav1.LabelSelectorAsSelector(s); err == nil && s != nil {
					sc.Status.Selector = ls.String()
				}
			case map[string]string:
				sc.Status.Selector = labels.SelectorFromSet(s).String()
			}
		}
	}
	if status.IsValid() {
		if rep := status.FieldByName("Replicas"); rep.IsValid() && rep.Kind() == reflect.Int32 {
			sc.Status.Replicas = int32(rep.Int())
		}
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) {
	spec := reflect.ValueOf(obj).Elem().FieldByName("Spec")
	if !spec.IsValid() {
		return
	}
	if rep := spec.FieldByName("Replicas"); rep.IsValid() && rep.Kind() == reflect.Pointer {
		v := n
		rep.Set(reflect.ValueOf(&v))
	}
}

// --- binding ---

func (s *Server) serveBinding(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Verb != "create" {
		s.methodNotAllowed(w, r)
		return
	}
	o, params, err := s.decodeWrite(w, r, corev1.SchemeGroupVersion.WithKind("Binding"), &corev1.Binding{})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	b := o.(*corev1.Binding)
	if b.Name != "" && b.Name != info.Name {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", b.Name, info.Name)), res.gr, info.Name)
		return
	}
	if b.Target.Name == "" || (b.Target.Kind != "" && b.Target.Kind != "Node") {
		s.writeError(w, r, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), info.Name,
			fieldErrs("target.name", b.Target.Name, "must name a Node")), res.gr, info.Name)
		return
	}
	manager := managerName(r, params)
	_, _, err = s.updateObject(r.Context(), res, info, bindingStrategy{}, params.DryRun, false,
		func(current runtime.Object, exists bool) (runtime.Object, error) {
			pod := current.DeepCopyObject().(*corev1.Pod)
			if pod.DeletionTimestamp != nil {
				return nil, apierrors.NewConflict(res.gr, info.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", info.Name))
			}
			if pod.Spec.NodeName != "" {
				return nil, apierrors.NewConflict(res.gr, info.Name, fmt.Errorf("pod %s is already assigned to node %q", info.Name, pod.Spec.NodeName))
			}
			if b.UID != "" && b.UID != pod.UID {
				return nil, apierrors.NewConflict(res.gr, info.Name, fmt.Errorf("precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
			}
			pod.Spec.NodeName = b.Target.Name
			for k, v := range b.Annotations {
				if pod.Annotations == nil {
					pod.Annotations = map[string]string{}
				}
				pod.Annotations[k] = v
			}
			setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.now())})
			return s.trackUpdate(res, "binding", current, pod, manager)
		})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	s.writeObject(w, r, http.StatusCreated, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			if pod.Status.Conditions[i].Status != c.Status {
				pod.Status.Conditions[i] = c
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// --- eviction ---

func (s *Server) serveEviction(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Verb != "create" {
		s.methodNotAllowed(w, r)
		return
	}
	o, params, err := s.decodeWrite(w, r, policyv1.SchemeGroupVersion.WithKind("Eviction"), &policyv1.Eviction{})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	ev := o.(*policyv1.Eviction)
	if ev.Name != "" && ev.Name != info.Name {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("name in URL does not match name in Eviction object")), res.gr, info.Name)
		return
	}
	ctx := r.Context()
	pod := &corev1.Pod{}
	if err := res.store.Get(ctx, res.key(info.Namespace, info.Name), storage.GetOptions{}, pod); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	// Terminal or already-terminating pods are deleted without consulting
	// budgets, as upstream does.
	if pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		if err := s.checkDisruptionBudgets(ctx, pod, params.DryRun); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if params.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, _, err := s.deleteObject(ctx, res, info.Namespace, info.Name, opts); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	s.writeObject(w, r, http.StatusCreated, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// checkDisruptionBudgets refuses an eviction that a PodDisruptionBudget
// forbids (429) and otherwise takes one disruption from the budget.
func (s *Server) checkDisruptionBudgets(ctx context.Context, pod *corev1.Pod, dryRun bool) error {
	pdbRes := s.resources[schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}]
	if pdbRes == nil {
		return nil
	}
	list := &policyv1.PodDisruptionBudgetList{}
	if err := pdbRes.store.GetList(ctx, pdbRes.listKey(pod.Namespace), storage.ListOptions{Recursive: true}, list); err != nil {
		return err
	}
	var matching []*policyv1.PodDisruptionBudget
	for i := range list.Items {
		pdb := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		matching = append(matching, pdb)
	}
	if len(matching) == 0 {
		return nil
	}
	if len(matching) > 1 {
		return apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	pdb := matching[0]
	if pdb.Status.DisruptionsAllowed <= 0 || pdb.Status.ObservedGeneration < pdb.Generation {
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: "DisruptionBudget", Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)})
		return err
	}
	if dryRun {
		return nil
	}
	out := &policyv1.PodDisruptionBudget{}
	return pdbRes.store.GuaranteedUpdate(ctx, pdbRes.key(pdb.Namespace, pdb.Name), out, false, nil, func(cur runtime.Object) (runtime.Object, error) {
		p := cur.DeepCopyObject().(*policyv1.PodDisruptionBudget)
		if p.Status.DisruptionsAllowed <= 0 {
			return nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		p.Status.DisruptionsAllowed--
		if p.Status.DisruptedPods == nil {
			p.Status.DisruptedPods = map[string]metav1.Time{}
		}
		p.Status.DisruptedPods[pod.Name] = metav1.NewTime(s.now())
		return p, nil
	})
}

// --- namespace finalize ---

func (s *Server) serveFinalize(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	if info.Verb != "update" {
		s.methodNotAllowed(w, r)
		return
	}
	o, params, err := s.decodeWrite(w, r, res.gvk, res.New())
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	in, ok := o.(*corev1.Namespace)
	if !ok {
		s.writeError(w, r, apierrors.NewBadRequest("finalize takes a Namespace"), res.gr, info.Name)
		return
	}
	out, _, err := s.updateObject(r.Context(), res, info, &finalizeStrategy{res.Strategy}, params.DryRun, false,
		func(current runtime.Object, exists bool) (runtime.Object, error) {
			ns := current.DeepCopyObject().(*corev1.Namespace)
			ns.Spec.Finalizers = in.Spec.Finalizers
			return ns, nil
		})
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	// A terminating namespace with no finalizers left is removed.
	if ns, ok := out.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil && len(ns.Spec.Finalizers) == 0 && len(ns.Finalizers) == 0 && !params.DryRun {
		rv := ns.ResourceVersion
		deleted := res.New()
		if err := res.store.Delete(r.Context(), res.key("", info.Name), deleted, &storage.Preconditions{ResourceVersion: &rv}, nil); err == nil {
			out = deleted
		}
	}
	s.respond(w, r, res, http.StatusOK, out)
}

// finalizeStrategy skips the namespace strategy's update preparation
// (which keeps spec) so finalize can change spec.finalizers.
type finalizeStrategy struct{ registry.Strategy }

func (f *finalizeStrategy) PrepareForUpdate(ctx context.Context, obj, old runtime.Object) {
	registry.CopyField(obj, old, "Status")
}

// bindingStrategy writes the pod exactly as the binding handler built it:
// the spec's nodeName and the PodScheduled condition, which the pod's own
// update rules (immutable spec, status kept) would refuse or drop.
type bindingStrategy struct{}

func (bindingStrategy) Default(runtime.Object)                                           {}
func (bindingStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (bindingStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}
func (bindingStrategy) Validate(context.Context, runtime.Object) field.ErrorList         { return nil }
func (bindingStrategy) ValidateUpdate(context.Context, runtime.Object, runtime.Object) field.ErrorList {
	return nil
}
func (bindingStrategy) AllowCreateOnUpdate() bool { return false }
