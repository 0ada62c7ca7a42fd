package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultTimeout bounds each call that has no deadline of its own, as the
// kubelet's --runtime-request-timeout (2 min) does; callers pass shorter
// contexts where they know better.
const DefaultTimeout = 2 * time.Minute

// maxMsgSize is the kubelet's limit on CRI messages (16 MiB).
const maxMsgSize = 16 << 20

// Client talks CRI v1 to one runtime endpoint.
type Client struct {
	conn    *grpc.ClientConn
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	timeout time.Duration
}

// Dial returns a client of the runtime at endpoint, a unix socket path or a
// "unix://" URL. Dialing is lazy: an absent runtime shows in the first call.
// timeout bounds each call (DefaultTimeout if 0).
func Dial(endpoint string, timeout time.Duration) (*Client, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
		// As the kubelet: reconnect quickly after the runtime restarts
		// (gRPC's default back-off grows to 2 min).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cri: dial %s: %w", endpoint, err)
	}
	return &Client{
		conn:    conn,
		Runtime: runtimeapi.NewRuntimeServiceClient(conn),
		Images:  runtimeapi.NewImageServiceClient(conn),
		timeout: timeout,
	}, nil
}

func socketPath(endpoint string) (string, error) {
	switch {
	case endpoint == "":
		return "", errors.New("cri: empty endpoint")
	case strings.HasPrefix(endpoint, "unix://"):
		return strings.TrimPrefix(endpoint, "unix://"), nil
	case strings.Contains(endpoint, "://"):
		return "", fmt.Errorf("cri: endpoint %q: only unix sockets are supported", endpoint)
	}
	return endpoint, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ctx bounds a call by the client's timeout unless ctx has an earlier
// deadline.
func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Version asks the runtime for its name and version; it is the liveness
// check of the runtime.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	r, err := c.Runtime.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
	if err != nil {
		return nil, fmt.Errorf("cri version: %w", err)
	}
	return r, nil
}
