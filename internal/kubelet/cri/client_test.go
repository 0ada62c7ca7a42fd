package cri

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime answers Version and fails StartContainer with NotFound; the
// rest is unimplemented.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	delay time.Duration
}

func (f *fakeRuntime) Version(ctx context.Context, _ *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) StartContainer(context.Context, *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	return nil, status.Error(codes.NotFound, "no such container")
}

func serve(t *testing.T, f *fakeRuntime) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return sock
}

func TestClient(t *testing.T) {
	sock := serve(t, &fakeRuntime{})
	for _, endpoint := range []string{sock, "unix://" + sock} {
		c, err := Dial(endpoint, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Version(context.Background())
		if err != nil {
			t.Fatalf("%s: version: %v", endpoint, err)
		}
		if v.RuntimeName != "fake" {
			t.Errorf("runtime name %q, want fake", v.RuntimeName)
		}
		// The gRPC status survives the wrapping.
		err = c.StartContainer(context.Background(), "abc")
		if status.Code(err) != codes.NotFound {
			t.Errorf("start container: %v, want code NotFound", err)
		}
		c.Close()
	}
}

func TestClientTimeout(t *testing.T) {
	sock := serve(t, &fakeRuntime{delay: time.Minute})
	c, err := Dial(sock, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Version(context.Background()); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("version: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestDialRejects(t *testing.T) {
	for _, e := range []string{"", "tcp://127.0.0.1:1"} {
		if _, err := Dial(e, 0); err == nil {
			t.Errorf("Dial(%q) succeeded", e)
		}
	}
}
