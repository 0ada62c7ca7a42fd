package kubelet

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestRunProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Check") != "1" || r.URL.RawQuery != "a=b" {
				w.WriteHeader(http.StatusBadRequest)
			}
		case "/moved":
			w.WriteHeader(http.StatusFound) // 3xx counts as success
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	k := testKubelet()
	cp := containerProbe{podIP: host, container: corev1.Container{Name: "c",
		Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}}
	httpGet := func(path string, p intstr.IntOrString) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: p,
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Check", Value: "1"}}}}}
	}
	tcp := func(p int) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(p)}}}
	}
	for _, tc := range []struct {
		name  string
		probe *corev1.Probe
		ok    bool
	}{
		{"http 200 with headers and query", httpGet("/ok?a=b", intstr.FromInt(port)), true},
		{"http named port", httpGet("/ok?a=b", intstr.FromString("web")), true},
		{"http 302", httpGet("moved", intstr.FromInt(port)), true},
		{"http 500", httpGet("/fail", intstr.FromInt(port)), false},
		{"http unknown port name", httpGet("/ok", intstr.FromString("nope")), false},
		{"http refused", httpGet("/ok", intstr.FromInt(closedPort)), false},
		{"tcp open", tcp(port), true},
		{"tcp refused", tcp(closedPort), false},
		{"no handler", &corev1.Probe{}, false},
	} {
		err := k.runProbe(context.Background(), cp, "id", tc.probe, time.Second)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
