package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// ClientConfig reaches an external etcd cluster.
type ClientConfig struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
}

// NewClient connects to an external etcd cluster and checks it answers.
func NewClient(ctx context.Context, cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints")
	}
	var tlsCfg *tls.Config
	if cfg.CAFile != "" || cfg.CertFile != "" {
		info := transport.TLSInfo{TrustedCAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}
		var err error
		if tlsCfg, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd tls: %w", err)
		}
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:          cfg.Endpoints,
		TLS:                tlsCfg,
		DialTimeout:        10 * time.Second,
		Logger:             quietZap(),
		DialOptions:        []grpc.DialOption{grpc.WithBlock()},
		MaxCallRecvMsgSize: 512 * 1024 * 1024,
		Context:            ctx,
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Get(sctx, "/registry/health-check"); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd does not answer: %w", err)
	}
	return c, nil
}
