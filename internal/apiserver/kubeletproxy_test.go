package apiserver

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodContainer(t *testing.T) {
	one := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}}, Containers: []corev1.Container{{Name: "main"}}}}
	two := one.DeepCopy()
	two.Spec.Containers = append(two.Spec.Containers, corev1.Container{Name: "side"})
	for _, tc := range []struct {
		pod       *corev1.Pod
		name      string
		want, err string
	}{
		{one, "", "main", ""},
		{one, "init", "init", ""},
		{two, "side", "side", ""},
		{one, "nope", "", "container nope is not valid for pod p"},
		{two, "", "", "a container name must be specified for pod p, choose one of: [init main side]"},
	} {
		got, err := podContainer(tc.pod, tc.name)
		if tc.err != "" {
			if !apierrors.IsBadRequest(err) || err.Error() != tc.err {
				t.Errorf("%q: err %v, want 400 %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestConnectOptions(t *testing.T) {
	for _, tc := range []struct {
		ports []string
		ok    bool
	}{
		{nil, true},
		{[]string{"80"}, true},
		{[]string{"80,8080", "443"}, true},
		{[]string{"0"}, false},
		{[]string{"65536"}, false},
		{[]string{"http"}, false},
	} {
		err := checkPorts(tc.ports)
		if (err == nil) != tc.ok || (err != nil && !apierrors.IsBadRequest(err)) {
			t.Errorf("ports %q: %v", tc.ports, err)
		}
	}
	for q, ok := range map[string]bool{"": false, "tty=true": false, "stdout=true": true, "stdin=1": true, "stderr=false": false} {
		v, _ := url.ParseQuery(q)
		if err := checkStreams(v); (err == nil) != ok || (err != nil && !apierrors.IsBadRequest(err)) {
			t.Errorf("streams %q: %v", q, err)
		}
	}
}

func TestKubeletTLSError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"unknown authority", fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), true},
		{"flattened by the upgrade dialer", fmt.Errorf("error dialing backend: %v", errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")), true},
		{"wrong host", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "10.0.0.1"}, true},
		{"connection refused", errors.New("dial tcp 10.0.0.1:10250: connect: connection refused"), false},
	} {
		st := kubeletTLSError("n1", "10.0.0.1:10250", tc.err)
		if (st != nil) != tc.want {
			t.Errorf("%s: %v, want a 503: %v", tc.name, st, tc.want)
			continue
		}
		if st != nil && (st.ErrStatus.Code != 503 || !strings.Contains(st.ErrStatus.Message, "node n1")) {
			t.Errorf("%s: %+v", tc.name, st.ErrStatus)
		}
	}
}
