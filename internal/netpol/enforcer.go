package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// DefaultTable is the nftables table (family inet) the enforcer owns.
const DefaultTable = "skiff-netpol"

// Config configures an Enforcer.
type Config struct {
	// Client reads NetworkPolicies, Pods and Namespaces.
	Client kubernetes.Interface
	// NodeName is the node whose pods are enforced.
	NodeName string
	// Table is the inet table to own (default DefaultTable).
	Table string
	// NFT, when set, is used instead of the system's nft (tests).
	NFT    knftables.Interface
	Logger *slog.Logger
}

// Validate rejects an unusable config, naming the flag.
func (c *Config) Validate() error {
	if c.Client == nil {
		return errors.New("netpol: a client is required")
	}
	if c.NodeName == "" {
		return errors.New("--node-name: required for network policy")
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if len(c.Table) > 64 || strings.ContainsAny(c.Table, " \t\n;{}\"'") {
		return fmt.Errorf("--netpol-table %q: not a valid nftables table name", c.Table)
	}
	return nil
}

// Enforcer keeps an nftables table in step with the cluster's
// NetworkPolicies for the pods of one node.
type Enforcer struct {
	cfg     Config
	log     *slog.Logger
	applier *applier
	kick    chan struct{}
	ready   chan struct{}
}

// New validates cfg; nothing runs until Run.
func New(cfg Config) (*Enforcer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NFT == nil {
		nft, err := knftables.New(knftables.InetFamily, cfg.Table)
		if err != nil {
			return nil, fmt.Errorf("netpol: nftables: %w", err)
		}
		cfg.NFT = nft
	}
	return &Enforcer{cfg: cfg, log: cfg.Logger.With("component", "netpol", "table", cfg.Table),
		applier: &applier{nft: cfg.NFT}, kick: make(chan struct{}, 1), ready: make(chan struct{})}, nil
}

// Ready is closed once the informers have synced and the table holds the
// first full state.
func (e *Enforcer) Ready() <-chan struct{} { return e.ready }

// Run watches the API and applies changes until ctx ends. The table stays
// in place after Run returns: pods keep running while the agent restarts,
// and their policies must stay enforced; the next Run rebuilds it.
func (e *Enforcer) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(e.cfg.Client, 0)
	pols, pods, nss := f.Networking().V1().NetworkPolicies(), f.Core().V1().Pods(), f.Core().V1().Namespaces()
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { e.trigger() },
		UpdateFunc: func(o, n any) { e.trigger() },
		DeleteFunc: func(any) { e.trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{pols.Informer(), pods.Informer(), nss.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return fmt.Errorf("netpol: %w", err)
		}
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), pols.Informer().HasSynced, pods.Informer().HasSynced, nss.Informer().HasSynced) {
		return ctx.Err()
	}
	read := func() Input {
		in := Input{NodeName: e.cfg.NodeName}
		in.Policies, _ = pols.Lister().List(labels.Everything())
		in.Pods, _ = pods.Lister().List(labels.Everything())
		in.Namespaces, _ = nss.Lister().List(labels.Everything())
		return in
	}
	e.trigger()
	backoff := time.Second
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.kick:
		case <-retry.C:
		}
		start := time.Now()
		st, err := e.applier.apply(ctx, Compute(read()))
		if err != nil {
			e.log.Error("sync failed; retrying with a full rebuild", "err", err, "in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if st.Full || st.ChainsRewritten > 0 {
			e.log.Info("synced", "full", st.Full, "elements", st.Elements, "chains", st.ChainsRewritten,
				"operations", st.Operations, "took", time.Since(start).Round(time.Microsecond))
		} else if st.Operations > 0 {
			e.log.Debug("synced elements", "elements", st.Elements, "took", time.Since(start).Round(time.Microsecond))
		}
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
	}
}

func (e *Enforcer) trigger() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}
