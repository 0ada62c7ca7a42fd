package kubelet

import (
	"context"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// masterService is the Service every pod gets variables for, whatever its
// enableServiceLinks, as upstream's kubelet: what rest.InClusterConfig
// reads (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT).
const (
	masterServiceNamespace = metav1.NamespaceDefault
	masterServiceName      = "kubernetes"
)

// masterServiceEnv is the kubernetes Service's variables, read once per
// sync; nil when it does not exist (yet) or cannot be read.
func (o *objects) masterServiceEnv(ctx context.Context) []corev1.EnvVar {
	if o.serviceEnvDone {
		return o.serviceEnv
	}
	o.serviceEnvDone = true
	var svc *corev1.Service
	if o.watch != nil {
		obj, err := o.watch.get(ctx, objectKey{"service", masterServiceNamespace, masterServiceName}, "")
		if err != nil {
			return nil
		}
		svc = obj.(*corev1.Service)
	} else {
		var err error
		if svc, err = o.client.CoreV1().Services(masterServiceNamespace).Get(ctx, masterServiceName, metav1.GetOptions{}); err != nil {
			return nil
		}
	}
	o.serviceEnv = serviceEnv(svc)
	return o.serviceEnv
}

// serviceEnv is a Service's Docker-links style variables, as upstream's
// kubelet makes them: <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT, one
// <NAME>_SERVICE_PORT_<PORTNAME> per named port, and the <NAME>_PORT*
// family for each port. Headless and address-less Services have none.
func serviceEnv(svc *corev1.Service) []corev1.EnvVar {
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
		return nil
	}
	name := envName(svc.Name)
	host := ip
	if strings.Contains(ip, ":") {
		host = "[" + ip + "]"
	}
	first := svc.Spec.Ports[0]
	out := []corev1.EnvVar{
		{Name: name + "_SERVICE_HOST", Value: ip},
		{Name: name + "_SERVICE_PORT", Value: strconv.Itoa(int(first.Port))},
	}
	for _, p := range svc.Spec.Ports {
		if p.Name != "" {
			out = append(out, corev1.EnvVar{Name: name + "_SERVICE_PORT_" + envName(p.Name), Value: strconv.Itoa(int(p.Port))})
		}
	}
	proto := strings.ToLower(string(first.Protocol))
	if proto == "" {
		proto = "tcp"
	}
	out = append(out, corev1.EnvVar{Name: name + "_PORT", Value: proto + "://" + host + ":" + strconv.Itoa(int(first.Port))})
	for _, p := range svc.Spec.Ports {
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		port := strconv.Itoa(int(p.Port))
		prefix := name + "_PORT_" + port + "_" + strings.ToUpper(proto)
		out = append(out,
			corev1.EnvVar{Name: prefix, Value: proto + "://" + host + ":" + port},
			corev1.EnvVar{Name: prefix + "_PROTO", Value: proto},
			corev1.EnvVar{Name: prefix + "_PORT", Value: port},
			corev1.EnvVar{Name: prefix + "_ADDR", Value: ip},
		)
	}
	return out
}

func envName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }
