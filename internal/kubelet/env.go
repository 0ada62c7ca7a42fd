package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// reasonConfigError is the waiting reason of a container whose env or
// config refers to something missing.
const reasonConfigError = "CreateContainerConfigError"

// objects reads the config maps and secrets one pod sync refers to, each
// at most once, with the errors upstream's kubelet reports.
type objects struct {
	client kubernetes.Interface
	// watch, if set, answers the lookups from watches (objectwatch.go) on
	// behalf of the pod podUID; else each lookup is a GET.
	watch      *objectWatch
	podUID     string
	namespace  string
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	// serviceEnv is the kubernetes Service's variables (serviceenv.go).
	serviceEnv     []corev1.EnvVar
	serviceEnvDone bool
}

func newObjects(c kubernetes.Interface, namespace string) *objects {
	return &objects{client: c, namespace: namespace, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

func (o *objects) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := o.configMaps[name]; ok {
		return cm, nil
	}
	var cm *corev1.ConfigMap
	var err error
	if o.watch != nil {
		var obj runtime.Object
		if obj, err = o.watch.get(ctx, objectKey{"configmap", o.namespace, name}, o.podUID); err == nil {
			cm = obj.(*corev1.ConfigMap)
		}
	} else {
		cm, err = o.client.CoreV1().ConfigMaps(o.namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		// upstream's configMapManager names the resource in the singular.
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmap"}, name)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't get configMap %s/%s: %w", o.namespace, name, err)
	}
	o.configMaps[name] = cm
	return cm, nil
}

func (o *objects) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	var s *corev1.Secret
	var err error
	if o.watch != nil {
		var obj runtime.Object
		if obj, err = o.watch.get(ctx, objectKey{"secret", o.namespace, name}, o.podUID); err == nil {
			s = obj.(*corev1.Secret)
		}
	} else {
		s, err = o.client.CoreV1().Secrets(o.namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secret"}, name)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't get secret %s/%s: %w", o.namespace, name, err)
	}
	o.secrets[name] = s
	return s, nil
}

// envContext is what env values and downward API files may refer to.
type envContext struct {
	pod      *corev1.Pod
	podIPs   []string
	hostIP   string
	nodeName string
	// allocatable stands in for unset limits in resourceFieldRef.
	allocatable corev1.ResourceList
}

// envList is an ordered environment in which a later definition of a name
// replaces the earlier value in place.
type envList struct {
	names []string
	vals  map[string]string
}

func (e *envList) set(name, val string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[name]; !ok {
		e.names = append(e.names, name)
	}
	e.vals[name] = val
}

// makeEnv is a container's environment as upstream's kubelet makes it:
// envFrom first (prefixed keys; keys that are not valid names are skipped),
// then env in order, each value with $(VAR) references to the variables
// defined before it expanded. Values from valueFrom are not expanded.
func makeEnv(ctx context.Context, o *objects, ec *envContext, c *corev1.Container) (*envList, error) {
	env := &envList{}
	// Service variables come first; the container's own may override.
	for _, e := range o.masterServiceEnv(ctx) {
		env.set(e.Name, e.Value)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := o.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			for _, k := range sortedKeys(cm.Data) {
				if name := from.Prefix + k; validEnvName(name) {
					env.set(name, cm.Data[k])
				}
			}
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := o.secret(ctx, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, err
			}
			for _, k := range sortedKeys(s.Data) {
				if name := from.Prefix + k; validEnvName(name) {
					env.set(name, string(s.Data[k]))
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expand(e.Value, env.mapping()))
			continue
		}
		v, skip, err := envValueFrom(ctx, o, ec, c, e.ValueFrom)
		if err != nil {
			return nil, err
		}
		if !skip {
			env.set(e.Name, v)
		}
	}
	return env, nil
}

// envValueFrom resolves one valueFrom; skip is set for an optional
// reference to something missing.
func envValueFrom(ctx context.Context, o *objects, ec *envContext, c *corev1.Container, from *corev1.EnvVarSource) (val string, skip bool, err error) {
	switch {
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := o.configMap(ctx, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if b, bok := cm.BinaryData[ref.Key]; bok {
				return string(b), false, nil
			}
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, o.namespace, ref.Name)
		}
		return v, false, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := o.secret(ctx, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, err
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, o.namespace, ref.Name)
		}
		return string(v), false, nil
	case from.FieldRef != nil:
		v, err := ec.fieldValue(from.FieldRef.FieldPath)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := ec.resourceValue(from.ResourceFieldRef, c)
		return v, false, err
	}
	return "", false, fmt.Errorf("env var source: none of configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef set")
}

// fieldValue is a pod field for fieldRef (env) and downward API files.
func (ec *envContext) fieldValue(path string) (string, error) {
	p := ec.pod
	if sub, ok := subscript(path, "metadata.labels"); ok {
		return p.Labels[sub], nil
	}
	if sub, ok := subscript(path, "metadata.annotations"); ok {
		return p.Annotations[sub], nil
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "metadata.labels":
		return formatMap(p.Labels), nil
	case "metadata.annotations":
		return formatMap(p.Annotations), nil
	case "spec.nodeName":
		return ec.nodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return ec.hostIP, nil
	case "status.podIP":
		if len(ec.podIPs) > 0 {
			return ec.podIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(ec.podIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", path)
}

// subscript splits "metadata.labels['k']" into k.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap is a downward API map: sorted key="value" lines, values quoted
// as Go does (upstream's fieldpath.FormatMap).
func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(m[k]))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// resourceValue is upstream's ExtractContainerResourceValue: unset limits
// are the node's allocatable; values are divided by the divisor, rounded up.
func (ec *envContext) resourceValue(ref *corev1.ResourceFieldSelector, c *corev1.Container) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		for _, list := range [][]corev1.Container{ec.pod.Spec.Containers, ec.pod.Spec.InitContainers} {
			for i := range list {
				if list[i].Name == ref.ContainerName {
					c = &list[i]
				}
			}
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var cpu bool
	switch ref.Resource {
	case "limits.cpu", "limits.memory", "limits.ephemeral-storage":
		name := corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits."))
		v, ok := c.Resources.Limits[name]
		if !ok {
			v = ec.allocatable[name]
		}
		q, cpu = v, name == corev1.ResourceCPU
	case "requests.cpu", "requests.memory", "requests.ephemeral-storage":
		name := corev1.ResourceName(strings.TrimPrefix(ref.Resource, "requests."))
		q, cpu = c.Resources.Requests[name], name == corev1.ResourceCPU
	default:
		return "", fmt.Errorf("unsupported container resource: %v", ref.Resource)
	}
	if cpu {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// mapping resolves $(NAME) to the value defined so far, leaving undefined
// references as they are.
func (e *envList) mapping() func(string) string {
	return func(name string) string {
		if v, ok := e.vals[name]; ok {
			return v
		}
		return "$(" + name + ")"
	}
}

// expand is upstream's third_party/forked/golang/expansion.Expand: $(VAR)
// is replaced through mapping, $$ is an escaped $, any other $ is literal.
func expand(input string, mapping func(string) string) string {
	var buf bytes.Buffer
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] == '$' && cursor+1 < len(input) {
			buf.WriteString(input[checkpoint:cursor])
			read, isVar, advance := readVariableName(input[cursor+1:])
			if isVar {
				buf.WriteString(mapping(read))
			} else {
				buf.WriteString(read)
			}
			cursor += advance
			checkpoint = cursor + 1
		}
	}
	return buf.String() + input[checkpoint:]
}

func readVariableName(input string) (string, bool, int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	}
	return "$" + input[0:1], false, 1
}

func validEnvName(s string) bool { return len(validation.IsEnvVarName(s)) == 0 }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
