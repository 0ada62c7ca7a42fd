package endpointslice

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controller/endpointutil"
)

// ControllerName is the managed-by label value of the slices this
// controller owns.
const ControllerName = "endpointslice-controller.k8s.io"

// DefaultMaxEndpointsPerSlice is upstream's --max-endpoints-per-slice
// default.
const DefaultMaxEndpointsPerSlice = 100

var serviceKind = corev1.SchemeGroupVersion.WithKind("Service")

// plan is the set of writes that brings a Service's slices to the desired
// state.
type plan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

// planner computes plans; nodes looks a node up by name (nil, NotFound
// error when absent).
type planner struct {
	maxPerSlice int
	node        func(name string) (*corev1.Node, error)
}

// AddressTypes returns the slice address types a Service gets: one per IP
// family (from spec.ipFamilies, else its cluster IP; headless Services
// without families get both).
func AddressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) > 0 {
		return out
	}
	if endpointutil.IsServiceIPSet(svc) {
		if endpointutil.IsIPv6(svc.Spec.ClusterIP) {
			return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
		}
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
}

// compute plans the writes for svc given its pods and the managed slices
// that exist. The error lists pods skipped because their node is missing;
// the plan is still valid and should be applied.
func (p *planner) compute(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice) (plan, error) {
	var out plan
	var errs []error
	types := AddressTypes(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		supported := false
		for _, t := range types {
			supported = supported || t == s.AddressType
		}
		if !supported {
			out.delete = append(out.delete, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	for _, t := range types {
		tp, err := p.byAddressType(svc, pods, byType[t], t)
		if err != nil {
			errs = append(errs, err)
		}
		out.create = append(out.create, tp.create...)
		out.update = append(out.update, tp.update...)
		out.delete = append(out.delete, tp.delete...)
	}
	out.reuseDeleted(svc)
	return out, joinErrs(errs)
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// endpointGroup is the desired endpoints of one port mapping.
type endpointGroup struct {
	ports     []discoveryv1.EndpointPort
	endpoints map[string]*discoveryv1.Endpoint
}

func (p *planner) byAddressType(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, at discoveryv1.AddressType) (plan, error) {
	var out plan
	var missing []string
	existingByPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !ownedBy(s, svc) {
			out.delete = append(out.delete, s) // left over from an older Service of this name
			continue
		}
		k := portsKey(s.Ports)
		existingByPorts[k] = append(existingByPorts[k], s)
	}
	desired := map[string]*endpointGroup{}
	for _, pod := range pods {
		if !endpointutil.ShouldPodBeInEndpoints(pod, true) {
			continue
		}
		ports := endpointPorts(svc, pod)
		k := portsKey(ports)
		g, ok := desired[k]
		if !ok {
			g = &endpointGroup{ports: ports, endpoints: map[string]*discoveryv1.Endpoint{}}
			desired[k] = g
		}
		node, err := p.node(pod.Spec.NodeName)
		if err != nil {
			if !apierrors.IsNotFound(err) {
				return out, err
			}
			// A pod naming a missing node is left out (and the Service
			// retried) unless the Service publishes not-ready
			// addresses anyway.
			if !svc.Spec.PublishNotReadyAddresses {
				missing = append(missing, fmt.Sprintf("skipping pod %s/%s: node %q not found", pod.Namespace, pod.Name, pod.Spec.NodeName))
				continue
			}
			node = nil
		}
		ep := podToEndpoint(pod, node, svc, at)
		if len(ep.Addresses) > 0 {
			g.endpoints[endpointKey(&ep)] = &ep
		}
	}
	labels := sliceLabels(svc)
	for k, g := range desired {
		gp := p.byPortMapping(svc, existingByPorts[k], g, at, labels)
		out.create = append(out.create, gp.create...)
		out.update = append(out.update, gp.update...)
		out.delete = append(out.delete, gp.delete...)
	}
	for k, ss := range existingByPorts {
		if _, ok := desired[k]; !ok {
			out.delete = append(out.delete, ss...)
		}
	}
	// A Service without endpoints still gets one empty slice, so
	// consumers can tell "no endpoints" from "not processed yet".
	if len(existing) == len(out.delete) && len(out.create) == 0 {
		if len(out.delete) == 1 && isPlaceholder(out.delete[0], svc, labels) {
			out.delete = nil
		} else {
			out.create = append(out.create, newSlice(svc, nil, at, labels))
		}
	}
	var err error
	if len(missing) > 0 {
		err = fmt.Errorf("%s", strings.Join(missing, "; "))
	}
	return out, err
}

// byPortMapping reconciles the slices of one port mapping: endpoints no
// longer wanted are dropped, changed ones replaced in place, slices being
// updated anyway are filled up first, then an unchanged slice the remainder
// fits in best, and only then new slices are created.
func (p *planner) byPortMapping(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, g *endpointGroup, at discoveryv1.AddressType, labels map[string]string) plan {
	var out plan
	var unchanged, updated []*discoveryv1.EndpointSlice
	want := g.endpoints
	for _, s := range existing {
		var keep []discoveryv1.Endpoint
		changed := false
		for i := range s.Endpoints {
			k := endpointKey(&s.Endpoints[i])
			d, ok := want[k]
			if !ok {
				continue
			}
			keep = append(keep, *d)
			if !apiequality.Semantic.DeepEqual(*d, s.Endpoints[i]) {
				changed = true
			}
			delete(want, k)
		}
		labelsChanged := !apiequality.Semantic.DeepEqual(labelsOrEmpty(s.Labels), labels)
		switch {
		case changed || len(keep) != len(s.Endpoints):
			if len(keep) == 0 {
				out.delete = append(out.delete, s)
				continue
			}
			c := s.DeepCopy()
			c.Endpoints = keep
			c.Labels = labels
			updated = append(updated, c)
		case labelsChanged:
			c := s.DeepCopy()
			c.Labels = labels
			updated = append(updated, c)
		default:
			unchanged = append(unchanged, s)
		}
	}
	remaining := sortedEndpoints(want)
	pop := func(s *discoveryv1.EndpointSlice) {
		for len(remaining) > 0 && len(s.Endpoints) < p.maxPerSlice {
			s.Endpoints = append(s.Endpoints, remaining[0])
			remaining = remaining[1:]
		}
	}
	// Fill the fullest slices being updated first.
	sort.SliceStable(updated, func(i, j int) bool { return len(updated[i].Endpoints) > len(updated[j].Endpoints) })
	for _, s := range updated {
		pop(s)
	}
	for len(remaining) > 0 {
		var fill *discoveryv1.EndpointSlice
		if len(remaining) < p.maxPerSlice {
			if i := sliceToFill(unchanged, len(remaining), p.maxPerSlice); i >= 0 {
				fill = unchanged[i].DeepCopy()
				unchanged = append(unchanged[:i], unchanged[i+1:]...)
				updated = append(updated, fill)
			}
		}
		if fill == nil {
			fill = newSlice(svc, g.ports, at, labels)
			out.create = append(out.create, fill)
		}
		pop(fill)
	}
	out.update = append(out.update, updated...)
	return out
}

// sliceToFill returns the index of the slice that is closest to full once
// n endpoints are added without overflowing, or -1.
func sliceToFill(slices []*discoveryv1.EndpointSlice, n, max int) int {
	best, bestDiff := -1, max
	for i, s := range slices {
		diff := max - (n + len(s.Endpoints))
		if diff >= 0 && diff < bestDiff {
			best, bestDiff = i, diff
			if diff == 0 {
				break
			}
		}
	}
	return best
}

// reuseDeleted turns creates into updates of slices that would otherwise
// be deleted (same address type, owned by svc), so churn reuses names.
func (pl *plan) reuseDeleted(svc *corev1.Service) {
	for i := 0; i < len(pl.delete) && len(pl.create) > 0; {
		old := pl.delete[i]
		s := pl.create[len(pl.create)-1]
		if old.AddressType != s.AddressType || !ownedBy(old, svc) {
			i++
			continue
		}
		s.Name, s.GenerateName, s.ResourceVersion, s.UID = old.Name, old.GenerateName, old.ResourceVersion, old.UID
		s.Annotations = make(map[string]string, len(old.Annotations))
		for k, v := range old.Annotations {
			s.Annotations[k] = v
		}
		pl.create = pl.create[:len(pl.create)-1]
		pl.update = append(pl.update, s)
		pl.delete = append(pl.delete[:i], pl.delete[i+1:]...)
	}
}

func podToEndpoint(pod *corev1.Pod, node *corev1.Node, svc *corev1.Service, at discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := controller.IsPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	// Ready is never true for a terminating endpoint unless the Service
	// publishes not-ready addresses.
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses:  []string{},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	for _, ip := range endpointutil.PodIPs(pod) {
		if endpointutil.IsIPv6(ip) == (at == discoveryv1.AddressTypeIPv6) {
			ep.Addresses = append(ep.Addresses, ip)
		}
	}
	if pod.Spec.NodeName != "" {
		n := pod.Spec.NodeName
		ep.NodeName = &n
	}
	if node != nil && node.Labels[corev1.LabelTopologyZone] != "" {
		z := node.Labels[corev1.LabelTopologyZone]
		ep.Zone = &z
	}
	if endpointutil.ShouldSetHostname(pod, svc) {
		h := pod.Spec.Hostname
		ep.Hostname = &h
	}
	return ep
}

// endpointPorts resolves the Service's ports on a pod; ports the pod
// lacks (a named targetPort) are left out, which puts the pod in a
// different port mapping.
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		num, err := endpointutil.FindPort(pod, sp)
		if err != nil {
			continue
		}
		name, proto := sp.Name, sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &num, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	return out
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		var name, proto, app string
		var num int32
		if p.Name != nil {
			name = *p.Name
		}
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		if p.Port != nil {
			num = *p.Port
		}
		parts = append(parts, fmt.Sprintf("%s/%d/%s/%s", name, num, proto, app))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// endpointKey identifies an endpoint across syncs: its pod, hostname and
// addresses (as upstream's endpoint hash).
func endpointKey(ep *discoveryv1.Endpoint) string {
	addrs := append([]string(nil), ep.Addresses...)
	sort.Strings(addrs)
	var ns, name, host string
	if ep.TargetRef != nil {
		ns, name = ep.TargetRef.Namespace, ep.TargetRef.Name
	}
	if ep.Hostname != nil {
		host = *ep.Hostname
	}
	return ns + "/" + name + "|" + host + "|" + strings.Join(addrs, ",")
}

func sortedEndpoints(m map[string]*discoveryv1.Endpoint) []discoveryv1.Endpoint {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]discoveryv1.Endpoint, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

// sliceLabels are the Service's labels (without the reserved ones) plus
// the service-name, managed-by and, for headless Services, headless labels.
func sliceLabels(svc *corev1.Service) map[string]string {
	out := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		if k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy || k == corev1.IsHeadlessService {
			continue
		}
		out[k] = v
	}
	if !endpointutil.IsServiceIPSet(svc) {
		out[corev1.IsHeadlessService] = ""
	}
	out[discoveryv1.LabelServiceName] = svc.Name
	out[discoveryv1.LabelManagedBy] = ControllerName
	return out
}

func labelsOrEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func newSlice(svc *corev1.Service, ports []discoveryv1.EndpointPort, at discoveryv1.AddressType, labels map[string]string) *discoveryv1.EndpointSlice {
	if ports == nil {
		ports = []discoveryv1.EndpointPort{}
	}
	l := make(map[string]string, len(labels))
	for k, v := range labels {
		l[k] = v
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          l,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, serviceKind)},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

func isPlaceholder(s *discoveryv1.EndpointSlice, svc *corev1.Service, labels map[string]string) bool {
	return len(s.Endpoints) == 0 && len(s.Ports) == 0 && ownedBy(s, svc) &&
		apiequality.Semantic.DeepEqual(labelsOrEmpty(s.Labels), labels)
}

func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}
