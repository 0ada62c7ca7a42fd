package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/tools/portforward"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// portForwardProtocol is the SPDY sub-protocol of port-forward.
	portForwardProtocol = "portforward.k8s.io"
	// tunnelPrefix marks a WebSocket sub-protocol that carries SPDY
	// (KEP-4006: kubectl 1.31+ port-forward over WebSocket).
	tunnelPrefix = "SPDY/3.1+"
)

// servePortForward connects the client to the pod's network namespace
// through the runtime's port-forward server. A SPDY client is proxied to it
// as it is; a WebSocket client that tunnels SPDY (sub-protocol
// "SPDY/3.1+portforward.k8s.io") has its WebSocket messages unwrapped into
// a SPDY connection that this server opens to the runtime, so the SPDY
// frames pass through untouched either way.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name := r.PathValue("ns"), r.PathValue("pod")
	req := &runtimeapi.PortForwardRequest{}
	for _, v := range r.URL.Query()["ports"] {
		for _, f := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || p == 0 {
				http.Error(w, fmt.Sprintf("invalid port %q", f), http.StatusBadRequest)
				return
			}
			req.Port = append(req.Port, int32(p))
		}
	}
	sbs, err := s.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": name}})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if len(sbs) == 0 {
		http.Error(w, fmt.Sprintf("pod %s/%s has no running sandbox on this node", ns, name), http.StatusNotFound)
		return
	}
	newest := sbs[0]
	for _, sb := range sbs[1:] {
		if sb.CreatedAt > newest.CreatedAt {
			newest = sb
		}
	}
	req.PodSandboxId = newest.Id
	raw, err := s.cfg.Runtime.PortForward(ctx, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	loc, err := url.Parse(raw)
	if err != nil {
		http.Error(w, fmt.Sprintf("runtime streaming URL %q: %v", raw, err), http.StatusInternalServerError)
		return
	}
	if isWebSocket(r) {
		s.tunnelPortForward(w, r, loc)
		return
	}
	h := proxy.NewUpgradeAwareHandler(loc, http.DefaultTransport, false, true, responder{s})
	h.ServeHTTP(w, r)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// tunnelPortForward serves a SPDY-over-WebSocket client: it upgrades the
// runtime connection to SPDY first (so a runtime error is still an HTTP
// error), then the client's to WebSocket, and copies bytes both ways.
func (s *Server) tunnelPortForward(w http.ResponseWriter, r *http.Request, loc *url.URL) {
	offered := gwebsocket.Subprotocols(r)
	want := tunnelPrefix + portForwardProtocol
	found := false
	for _, p := range offered {
		found = found || p == want
	}
	if !found {
		http.Error(w, fmt.Sprintf("unsupported port-forward WebSocket sub-protocols %q; this kubelet speaks %q", offered, want), http.StatusBadRequest)
		return
	}
	up, err := dialSPDY(r.Context(), loc, portForwardProtocol)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer up.Close()
	u := gwebsocket.Upgrader{Subprotocols: []string{want}, CheckOrigin: func(*http.Request) bool { return true },
		HandshakeTimeout: 30 * time.Second}
	ws, err := u.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("port-forward websocket", "err", err)
		return
	}
	tc := portforward.NewTunnelingConnection("kubelet", ws)
	defer tc.Close()
	var once sync.Once
	done := make(chan struct{})
	stop := func() { once.Do(func() { close(done) }) }
	go func() { _, _ = io.Copy(up, tc); stop() }()
	go func() { _, _ = io.Copy(tc, up); stop() }()
	select {
	case <-done:
	case <-r.Context().Done():
	}
}

// upgraded is a connection after an HTTP upgrade, reading first what the
// response reader buffered.
type upgraded struct {
	net.Conn
	r *bufio.Reader
}

func (u *upgraded) Read(p []byte) (int, error) { return u.r.Read(p) }

// dialSPDY opens a raw connection to a runtime streaming URL and upgrades
// it to SPDY/3.1 with the given stream protocol.
func dialSPDY(ctx context.Context, loc *url.URL, protocol string) (net.Conn, error) {
	if loc.Scheme != "http" {
		return nil, fmt.Errorf("runtime streaming URL %s: only http is supported", loc.Redacted())
	}
	host := loc.Host
	if loc.Port() == "" {
		host = net.JoinHostPort(loc.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial the runtime's streaming server: %w", err)
	}
	req, _ := http.NewRequest(http.MethodPost, loc.String(), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", protocol)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade request to the runtime: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade response of the runtime: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		conn.Close()
		return nil, fmt.Errorf("runtime refused the port-forward upgrade: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_ = conn.SetDeadline(time.Time{})
	return &upgraded{Conn: conn, r: br}, nil
}
