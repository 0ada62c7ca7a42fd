package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EmbeddedConfig configures an in-process etcd.
type EmbeddedConfig struct {
	DataDir string
	Logger  *slog.Logger
}

// Embedded is a running in-process etcd member and a client for it.
type Embedded struct {
	etcd   *embed.Etcd
	client *clientv3.Client
	urls   []string
}

// The member's raft heartbeat and election timeout. With one member no
// peer waits for its heartbeats, so they decide two things only: how long a
// starting member takes to elect itself, and how often its raft clock wakes
// up while idle. etcd advances a lone member's election clock to one tick
// short of the election timeout and raft draws the timeout from
// [election, 2×election), so the wait is 1 to election/tick ticks: with
// etcd's defaults (100 ms, 1 s) 0.1–1 s of every server start, with these
// 50–250 ms. Each tick costs ~0.25 ms of CPU here, so 20 ticks a second add
// ~3 ms/s to an idle server (a 20 ms tick would add ~10 ms/s for at most
// 0.15 s less). etcd's request timeout (5 s plus twice the election timeout)
// shrinks from 7 to 5.5 s. A cluster of several members would need etcd's
// defaults (or its network's) back.
const (
	singleMemberTickMs     = 50
	singleMemberElectionMs = 250
)

// portsFile remembers the peer and client ports so a restart keeps the
// member's advertised peer URL.
const portsFile = "skiff-ports.json"

type ports struct {
	Client int `json:"client"`
	Peer   int `json:"peer"`
}

// StartEmbedded starts a single-member etcd under cfg.DataDir on free
// loopback ports and waits until it serves. On failure nothing is left
// running.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: empty data dir")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	p, err := choosePorts(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "skiff"
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Client))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Peer))}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{clientURL}, []url.URL{clientURL}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peerURL}, []url.URL{peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.LogLevel = "error"
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(quietZap())
	// Smaller in-memory raft log than the default 100k entries.
	ec.SnapshotCount = 10000
	ec.SnapshotCatchUpEntries = 5000
	ec.AutoCompactionRetention = "0" // the API server runs its own compactor
	ec.MaxRequestBytes = 4 * 1024 * 1024
	ec.MaxTxnOps = 10000
	ec.Metrics = "basic"
	ec.TickMs, ec.ElectionMs = singleMemberTickMs, singleMemberElectionMs
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd: not ready after 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	// The API server talks to its own member in-process: calls go straight
	// to the server's KV and Watch services, without gRPC framing,
	// protobuf round trips or a loopback socket. Every write still goes
	// through raft and the fsynced WAL before it is acknowledged. The
	// client URL stays open for etcdctl and for debugging.
	client := v3client.New(e.Server)
	if err := savePorts(cfg.DataDir, p); err != nil {
		client.Close()
		e.Close()
		return nil, err
	}
	return &Embedded{etcd: e, client: client, urls: []string{clientURL.String()}}, nil
}

// Client is a client connected to the member.
func (e *Embedded) Client() *clientv3.Client { return e.client }

// Endpoints are the member's client URLs.
func (e *Embedded) Endpoints() []string { return e.urls }

// Close stops the client and the member.
func (e *Embedded) Close() error {
	cerr := e.client.Close()
	e.etcd.Close()
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		return cerr
	}
	return nil
}

func quietZap() *zap.Logger {
	zc := zap.NewProductionConfig()
	// etcd logs its own listeners closing at shutdown as errors; real
	// failures reach us as client errors, so only panics are logged.
	zc.Level = zap.NewAtomicLevelAt(zapcore.DPanicLevel)
	zc.Sampling = nil
	l, err := zc.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

func choosePorts(dir string) (ports, error) {
	var p ports
	if data, err := os.ReadFile(filepath.Join(dir, portsFile)); err == nil && json.Unmarshal(data, &p) == nil {
		if portFree(p.Client) && portFree(p.Peer) {
			return p, nil
		}
	}
	var err error
	if p.Client, err = freePort(); err != nil {
		return p, err
	}
	for {
		if p.Peer, err = freePort(); err != nil {
			return p, err
		}
		if p.Peer != p.Client {
			return p, nil
		}
	}
}

func savePorts(dir string, p ports) error {
	data, _ := json.Marshal(p)
	if err := os.WriteFile(filepath.Join(dir, portsFile), data, 0o600); err != nil {
		return fmt.Errorf("embedded etcd: save ports: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("embedded etcd: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	if port <= 0 {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
