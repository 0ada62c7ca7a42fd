package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/apiserver/authn"
	"github.com/skiff-sh/skiff/internal/controller/localpath"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/rbac/bootstrappolicy"
)

// SystemNamespaces exist in every cluster.
var SystemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

type bootstrapConfig struct {
	ServiceIP net.IP
	// ClusterDNSIP is the kube-dns Service's cluster IP.
	ClusterDNSIP     net.IP
	Logger           *slog.Logger
	AdvertiseAddress string
	Port             int
	// NodeTokenPath is where the agents' join token is written; CAPEM is
	// the bundle its hash pins.
	NodeTokenPath string
	CAPEM         []byte
}

// bootstrap creates, through the API, the namespaces and the `kubernetes`
// Service (with its Endpoints and EndpointSlice) every cluster has. It is
// idempotent: a restart finds them and only mends what differs.
func bootstrap(ctx context.Context, kubeconfig string, cfg bootstrapConfig) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	rc.UserAgent = "skiff-server/bootstrap"
	rc.QPS, rc.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	// The listener may need a moment; retry until the API answers.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.Discovery().ServerVersion()
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("api server did not answer: %w", err)
	}
	for _, ns := range SystemNamespaces {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	// The default RBAC roles and bindings, as kube-apiserver's bootstrap.
	if err := bootstrappolicy.Reconcile(ctx, cs); err != nil {
		return fmt.Errorf("rbac defaults: %w", err)
	}
	if cfg.NodeTokenPath != "" {
		if err := ensureNodeToken(ctx, cs, cfg.NodeTokenPath, cfg.CAPEM); err != nil {
			return err
		}
	}
	// The system priority classes every cluster has, as upstream creates them.
	for name, value := range map[string]int32{"system-cluster-critical": 2000000000, "system-node-critical": 2000001000} {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
			Description: "Used for system critical pods that must not be moved from their current node."}
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create priority class %s: %w", name, err)
		}
	}
	if err := localpath.EnsureStorageClass(ctx, cs); err != nil {
		return err
	}
	labels := map[string]string{"component": "apiserver", "provider": "kubernetes"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: cfg.ServiceIP.String(),
			Ports: []corev1.ServicePort{{
				Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(int32(cfg.Port)),
			}},
			SessionAffinity: corev1.ServiceAffinityNone,
		},
	}
	// Get first: creating an existing Service fails on its taken cluster IP
	// (422) before it could fail as already existing.
	if _, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, svc.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := cs.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create kubernetes service: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("get kubernetes service: %w", err)
	}
	if cfg.ClusterDNSIP != nil {
		if err := createKubeDNS(ctx, cs, cfg.ClusterDNSIP); apierrors.IsInvalid(err) && cfg.Logger != nil {
			// The address is another Service's: the cluster still serves,
			// but ClusterFirst pods will not reach the cluster DNS.
			cfg.Logger.Error("kube-dns service not created; pods' cluster DNS will not answer", "err", err)
		} else if err != nil {
			return err
		}
	}
	port := int32(cfg.Port)
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: cfg.AdvertiseAddress}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := upsertEndpoints(ctx, cs, ep); err != nil {
		return err
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "skiff-server"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{cfg.AdvertiseAddress}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: strPtr("https"), Port: &port, Protocol: protoPtr(corev1.ProtocolTCP)}},
	}
	if net.ParseIP(cfg.AdvertiseAddress).To4() == nil {
		slice.AddressType = discoveryv1.AddressTypeIPv6
	}
	return upsertEndpointSlice(ctx, cs, slice)
}

// createKubeDNS creates the kube-system/kube-dns Service, labelled as K3s
// labels its CoreDNS Service, if missing. It has no selector: each node's
// agent keeps an EndpointSlice for it listing its own DNS server.
func createKubeDNS(ctx context.Context, cs kubernetes.Interface, ip net.IP) error {
	client := cs.CoreV1().Services(metav1.NamespaceSystem)
	if _, err := client.Get(ctx, "kube-dns", metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get kube-dns service: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem, Labels: map[string]string{
			"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: ip.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, TargetPort: intstr.FromInt32(53)},
			},
			SessionAffinity: corev1.ServiceAffinityNone,
		},
	}
	if _, err := client.Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create kube-dns service: %w", err)
	}
	return nil
}

func upsertEndpoints(ctx context.Context, cs kubernetes.Interface, want *corev1.Endpoints) error {
	client := cs.CoreV1().Endpoints(want.Namespace)
	cur, err := client.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = client.Create(ctx, want, metav1.CreateOptions{})
		return wrap("create kubernetes endpoints", err)
	}
	if err != nil {
		return fmt.Errorf("get kubernetes endpoints: %w", err)
	}
	cur.Subsets, cur.Labels = want.Subsets, want.Labels
	_, err = client.Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("update kubernetes endpoints", err)
}

func upsertEndpointSlice(ctx context.Context, cs kubernetes.Interface, want *discoveryv1.EndpointSlice) error {
	client := cs.DiscoveryV1().EndpointSlices(want.Namespace)
	cur, err := client.Get(ctx, want.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = client.Create(ctx, want, metav1.CreateOptions{})
		return wrap("create kubernetes endpointslice", err)
	}
	if err != nil {
		return fmt.Errorf("get kubernetes endpointslice: %w", err)
	}
	cur.Endpoints, cur.Ports, cur.AddressType, cur.Labels = want.Endpoints, want.Ports, want.AddressType, want.Labels
	_, err = client.Update(ctx, cur, metav1.UpdateOptions{})
	return wrap("update kubernetes endpointslice", err)
}

// ensureNodeToken makes sure the node token file and its bootstrap token
// Secret exist: a first start draws a token and writes
// K10<sha256 of the CA>::<id>.<secret> with mode 0600; later starts re-use
// the file's token and recreate its Secret if someone deleted it.
func ensureNodeToken(ctx context.Context, cs kubernetes.Interface, path string, caPEM []byte) error {
	var tok pki.BootstrapToken
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		nt, err := pki.ParseNodeToken(string(data))
		if err != nil {
			return fmt.Errorf("node token %s: %w", path, err)
		}
		tok = nt.Token
	case errors.Is(err, os.ErrNotExist):
		if tok, err = pki.NewBootstrapToken(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read node token: %w", err)
	}
	secret := authn.BootstrapSecret(tok, "skiff node join token", time.Time{}, pki.BootstrapAgentGroup)
	if _, err := cs.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create bootstrap token secret: %w", err)
	}
	if err := pki.WriteSecretFile(path, []byte(pki.FormatNodeToken(caPEM, tok)+"\n")); err != nil {
		return fmt.Errorf("node token: %w", err)
	}
	return nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func strPtr(s string) *string                     { return &s }
func protoPtr(p corev1.Protocol) *corev1.Protocol { return &p }
