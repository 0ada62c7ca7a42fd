package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"

	"github.com/skiff-sh/skiff/internal/storage"
)

// defaultKubeletPort is used when a node posts no kubelet endpoint.
const defaultKubeletPort = 10250

// logQuery, execQuery, attachQuery and portForwardQuery are the
// parameters passed on to the kubelet.
var (
	logQuery         = []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"}
	execQuery        = []string{"command", "stdin", "stdout", "stderr", "tty"}
	attachQuery      = []string{"stdin", "stdout", "stderr", "tty"}
	portForwardQuery = []string{"ports"}
)

// newKubeletTransport is how the API server reaches kubelets: with its
// client certificate (CN=kube-apiserver-kubelet-client, O=system:masters),
// verifying the kubelet's serving certificate against roots (the cluster
// CA) and the address dialled, as kube-apiserver with
// --kubelet-certificate-authority.
func newKubeletTransport(cert *tls.Certificate, roots *x509.CertPool) *http.Transport {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{TLSClientConfig: cfg, Proxy: nil, ForceAttemptHTTP2: false}
}

// servePodConnect proxies pods/log, pods/exec, pods/attach and
// pods/portforward to the kubelet of the pod's node; upgrades (SPDY,
// WebSocket) are piped both ways, the kubelet speaks to the runtime.
func (s *Server) servePodConnect(w http.ResponseWriter, r *http.Request, res *resource, info requestInfo) {
	sub := info.Subresource
	if (sub != "log" && r.Method != http.MethodGet && r.Method != http.MethodPost) || (sub == "log" && r.Method != http.MethodGet) {
		s.methodNotAllowed(w, r)
		return
	}
	pod := &corev1.Pod{}
	if err := res.store.Get(r.Context(), res.key(info.Namespace, info.Name), storage.GetOptions{}, pod); err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	q := r.URL.Query()
	container := ""
	if sub != "portforward" {
		var err error
		if container, err = podContainer(pod, q.Get("container")); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
	}
	if pod.Spec.NodeName == "" {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)), res.gr, info.Name)
		return
	}
	var path string
	var keep []string
	switch sub {
	case "log":
		path, keep = "/containerLogs/", logQuery
	case "exec":
		path, keep = "/exec/", execQuery
		if len(q["command"]) == 0 {
			s.writeError(w, r, apierrors.NewBadRequest("you must specify at least 1 command"), res.gr, info.Name)
			return
		}
	case "attach":
		path, keep = "/attach/", attachQuery
	case "portforward":
		path, keep = "/portForward/", portForwardQuery
		if err := checkPorts(q["ports"]); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
	}
	if sub == "exec" || sub == "attach" {
		if err := checkStreams(q); err != nil {
			s.writeError(w, r, err, res.gr, info.Name)
			return
		}
	}
	host, err := s.kubeletHost(r, pod.Spec.NodeName)
	if err != nil {
		s.writeError(w, r, err, res.gr, info.Name)
		return
	}
	out := url.Values{}
	for _, k := range keep {
		if v, ok := q[k]; ok {
			out[k] = v
		}
	}
	p := path + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name)
	if container != "" {
		p += "/" + url.PathEscape(container)
	}
	loc := &url.URL{Scheme: "https", Host: host, RawQuery: out.Encode(), Path: p}
	if sub == "log" {
		s.streamLogs(w, r, loc, info.Name, pod.Spec.NodeName)
		return
	}
	r.URL.RawQuery = out.Encode() // the handler sends the client's query
	h := proxy.NewUpgradeAwareHandler(loc, s.kubeletTransport, false, true, kubeletResponder{s, pod.Spec.NodeName, host})
	h.ServeHTTP(w, r)
}

// checkStreams rejects an exec or attach that asks for no stream, as
// kube-apiserver's option validation does.
func checkStreams(q url.Values) error {
	on := func(k string) bool { v, _ := strconv.ParseBool(q.Get(k)); return v }
	if !on("stdin") && !on("stdout") && !on("stderr") {
		return apierrors.NewBadRequest("you must specify at least one of stdin, stdout, stderr")
	}
	return nil
}

// checkPorts validates the optional ports parameter of pods/portforward.
func checkPorts(values []string) error {
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || p == 0 {
				return apierrors.NewBadRequest(fmt.Sprintf("invalid port %q: must be an integer between 1 and 65535", f))
			}
		}
	}
	return nil
}

// streamLogs copies the kubelet's log stream to w, flushing as it comes.
// A kubelet error becomes a Status as kube-apiserver makes it: 400 and 404
// keep their code, the kubelet's text is the message.
func (s *Server) streamLogs(w http.ResponseWriter, r *http.Request, loc *url.URL, name, node string) {
	gr := schema.GroupResource{Resource: "pods/log"}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, loc.String(), nil)
	if err != nil {
		s.writeError(w, r, apierrors.NewInternalError(err), gr, name)
		return
	}
	resp, err := (&http.Client{Transport: s.kubeletTransport}).Do(req)
	if err != nil {
		if st := kubeletTLSError(node, loc.Host, err); st != nil {
			s.writeStatus(w, r, &st.ErrStatus)
			return
		}
		s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("get logs from the kubelet: %w", err)), gr, name)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		msg := strings.TrimSpace(string(body))
		var st *apierrors.StatusError
		switch resp.StatusCode {
		case http.StatusBadRequest:
			st = apierrors.NewBadRequest(msg)
		case http.StatusNotFound:
			st = apierrors.NewNotFound(gr, name)
		default:
			st = apierrors.NewGenericServerResponse(resp.StatusCode, "get", gr, name, msg, 0, false)
		}
		s.writeStatus(w, r, &st.ErrStatus)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// podContainer checks name against the pod's containers; empty picks the
// only container.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name)
	}
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
	}
	for _, n := range names {
		if n == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// kubeletHost is host:port of a node's kubelet API.
func (s *Server) kubeletHost(r *http.Request, nodeName string) (string, error) {
	nodes := s.resources[schema.GroupVersionResource{Version: "v1", Resource: "nodes"}]
	if nodes == nil {
		return "", apierrors.NewInternalError(fmt.Errorf("no nodes resource"))
	}
	node := &corev1.Node{}
	if err := nodes.store.Get(r.Context(), nodes.key("", nodeName), storage.GetOptions{}, node); err != nil {
		if apierrors.IsNotFound(toAPIError(err, nodes.gr, nodeName)) {
			return "", apierrors.NewBadRequest(fmt.Sprintf("node %s of the pod is not found", nodeName))
		}
		return "", err
	}
	var addr string
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && addr == "" {
				addr = a.Address
			}
		}
	}
	if addr == "" {
		return "", apierrors.NewBadRequest(fmt.Sprintf("node %s has no address", nodeName))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = defaultKubeletPort
	}
	return net.JoinHostPort(strings.TrimSpace(addr), strconv.Itoa(port)), nil
}

type kubeletResponder struct {
	s          *Server
	node, host string
}

func (k kubeletResponder) Error(w http.ResponseWriter, r *http.Request, err error) {
	if st := kubeletTLSError(k.node, k.host, err); st != nil {
		k.s.writeStatus(w, r, &st.ErrStatus)
		return
	}
	k.s.writeStatus(w, r, &apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing the kubelet: %v", err)).ErrStatus)
}

// kubeletTLSError is a 503 naming the problem when err is the kubelet's
// serving certificate failing verification (nil otherwise). Upstream
// answers with the bare x509 error; the likely cause here is a node whose
// kubelet-serving CertificateSigningRequest is not issued yet, so it still
// serves its self-signed certificate.
func kubeletTLSError(node, host string, err error) *apierrors.StatusError {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	// The upgrade dialer flattens its error with %v: match its text too.
	if !errors.As(err, &verr) && !errors.As(err, &unknown) && !errors.As(err, &hostErr) && !errors.As(err, &invalid) &&
		!strings.Contains(err.Error(), "tls: failed to verify certificate") {
		return nil
	}
	return apierrors.NewServiceUnavailable(fmt.Sprintf("the kubelet of node %s at %s does not serve a certificate the cluster CA verifies "+
		"(is its kubelet-serving CertificateSigningRequest issued? see kubectl get csr): %v", node, host, err))
}
