package dns

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// staticSource names the zone's own records in the table; Service sources
// are "<ns>/<name>", which never start with a NUL.
const staticSource = "\x00static"

// Server is the cluster DNS server.
type Server struct {
	cfg   Config
	z     zoneInfo
	table *table
	fwd   *forwarder

	svcLister   corelisters.ServiceLister
	sliceLister discoverylisters.EndpointSliceLister
	syncMu      sync.Mutex // a Service's read-then-set is atomic against another event for it

	ready   chan struct{}
	udpAddr net.Addr
	tcpAddr net.Addr
}

// New validates cfg (after defaults, which may read resolv.conf) and returns
// a server that does nothing until Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	z := zoneInfo{zone: cfg.ClusterDomain + ".", ttl: uint32(cfg.TTL / time.Second)}
	s := &Server{
		cfg:   cfg,
		z:     z,
		table: newTable(),
		fwd:   newForwarder(cfg.Upstreams, cfg.ForwardTimeout),
		ready: make(chan struct{}),
	}
	s.table.set(staticSource, z.staticRecords())
	return s, nil
}

// Ready is closed once the caches are synced, the table built and both
// sockets bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound UDP address (the TCP one has the same port); valid once
// Ready is closed.
func (s *Server) Addr() string {
	if s.udpAddr == nil {
		return ""
	}
	return s.udpAddr.String()
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	log := s.cfg.Logger.With("component", "dns")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	factory := informers.NewSharedInformerFactory(s.cfg.Client, 0)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	s.svcLister = svcInf.Lister()
	s.sliceLister = sliceInf.Lister()
	svcReg, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onService(obj) },
		UpdateFunc: func(_, obj any) { s.onService(obj) },
		DeleteFunc: func(obj any) { s.onService(obj) },
	})
	if err != nil {
		return fmt.Errorf("service handler: %w", err)
	}
	sliceReg, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onSlice(obj) },
		UpdateFunc: func(old, obj any) { s.onSlice(old); s.onSlice(obj) },
		DeleteFunc: func(obj any) { s.onSlice(obj) },
	})
	if err != nil {
		return fmt.Errorf("endpointslice handler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcReg.HasSynced, sliceReg.HasSynced) {
		return fmt.Errorf("wait for caches: %w", ctx.Err())
	}

	udp, tcp, err := listen(s.cfg.ListenAddr)
	if err != nil {
		return err
	}
	s.udpAddr, s.tcpAddr = udp.LocalAddr(), tcp.Addr()
	udpSrv := &dns.Server{PacketConn: udp, Handler: s, ReusePort: false}
	tcpSrv := &dns.Server{Listener: tcp, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- udpSrv.ActivateAndServe() }()
	go func() { errc <- tcpSrv.ActivateAndServe() }()
	log.Info("serving cluster DNS", "udp", s.udpAddr.String(), "tcp", s.tcpAddr.String(),
		"zone", s.z.zone, "upstreams", s.cfg.Upstreams, "names", s.table.size())
	close(s.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("serve: %w", runErr)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = udpSrv.ShutdownContext(sctx)
	_ = tcpSrv.ShutdownContext(sctx)
	return runErr
}

// listen binds UDP and then TCP on the same port (for port 0, the port the
// kernel gave UDP; retried a few times should TCP find it taken).
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for range 5 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
			tcpAddr = net.JoinHostPort(host, p)
		}
		l, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = fmt.Errorf("listen tcp %s: %w", tcpAddr, err)
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

func (s *Server) onService(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	s.syncService(svc.Namespace, svc.Name)
}

func (s *Server) onSlice(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
		s.syncService(sl.Namespace, name)
	}
}

// syncService recomputes the records of one Service from the listers.
func (s *Server) syncService(ns, name string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	key := ns + "/" + name
	svc, err := s.svcLister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.table.set(key, nil)
		return
	}
	if err != nil {
		s.cfg.Logger.Error("dns: get service", "service", key, "err", err)
		return
	}
	var slices []*discoveryv1.EndpointSlice
	if svc.Spec.ClusterIP == corev1.ClusterIPNone && svc.Spec.Type != corev1.ServiceTypeExternalName {
		sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
		slices, err = s.sliceLister.EndpointSlices(ns).List(sel)
		if err != nil {
			s.cfg.Logger.Error("dns: list endpointslices", "service", key, "err", err)
			return
		}
	}
	s.table.set(key, s.z.serviceRecords(svc, slices))
}

var _ dns.Handler = (*Server)(nil)
