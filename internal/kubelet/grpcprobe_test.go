package kubelet

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
)

func TestGRPCProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, h)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	port := int32(l.Addr().(*net.TCPAddr).Port)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	for _, tc := range []struct {
		name    string
		port    int32
		service *string
		want    string
	}{
		{"serving", port, nil, ""},
		{"not serving", port, ptrTo("down"), `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", port, ptrTo("nope"), "health rpc probe failed"},
		{"nothing listens", closedPort, nil, "timeout: health rpc did not complete within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := grpcProbe(context.Background(), "127.0.0.1", &corev1.GRPCAction{Port: tc.port, Service: tc.service}, time.Second)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
