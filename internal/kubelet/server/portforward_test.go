package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	clientspdy "k8s.io/client-go/transport/spdy"
)

// echoStreams is a stand-in for the runtime's port-forward server: every
// data stream echoes what it gets, prefixed with the port header.
func echoStreams(t *testing.T) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := httpstream.Handshake(r, w, []string{portForwardProtocol}); err != nil {
			return
		}
		conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
			if s.Headers().Get("streamType") == "data" {
				go func() {
					defer s.Close()
					io.WriteString(s, s.Headers().Get("port")+":")
					io.Copy(s, s)
				}()
			}
			return nil
		})
		if conn != nil {
			<-conn.CloseChan()
		}
	}))
	t.Cleanup(ts.Close)
	return ts
}

type headerRT struct{ rt http.RoundTripper }

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r.Header.Set("X-Test-Group", "system:masters")
	return h.rt.RoundTrip(r)
}

func TestPortForward(t *testing.T) {
	rt, ts := newTestServer(t)
	rt.streamURL = echoStreams(t).URL
	cfg := &rest.Config{Host: ts.URL, WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return headerRT{rt} }}
	u, _ := url.Parse(ts.URL + "/portForward/default/p")

	spdyRT, upgrader, err := clientspdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]httpstream.Dialer{
		"spdy":      clientspdy.NewDialer(upgrader, &http.Client{Transport: spdyRT}, http.MethodPost, u),
		"websocket": wsDialer,
	} {
		t.Run(name, func(t *testing.T) {
			conn, proto, err := d.Dial(portForwardProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if proto != portForwardProtocol {
				t.Errorf("protocol %q", proto)
			}
			h := http.Header{}
			h.Set("port", "80")
			h.Set("requestID", "0")
			h.Set("streamType", "error")
			if _, err := conn.CreateStream(h); err != nil {
				t.Fatal(err)
			}
			h.Set("streamType", "data")
			s, err := conn.CreateStream(h)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(s, "hello")
			s.Close() // half-close: the echo ends
			done := make(chan string, 1)
			go func() { b, _ := io.ReadAll(s); done <- string(b) }()
			select {
			case got := <-done:
				if got != "80:hello" {
					t.Errorf("got %q, want %q", got, "80:hello")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no echo")
			}
		})
	}
}

func TestPortForwardBadInput(t *testing.T) {
	_, ts := newTestServer(t)
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/portForward/default/p?ports=0", http.StatusBadRequest, "invalid port"},
		{"/portForward/default/p?ports=x", http.StatusBadRequest, "invalid port"},
		{"/portForward/default/other", http.StatusNotFound, "has no running sandbox"},
		{"/attach/default/p/c", http.StatusBadRequest, "at least one of stdin"},
		{"/attach/default/p/c?stdout=1", http.StatusBadRequest, "is not running"},
	} {
		code, body := get(t, ts, tc.path)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.msg)
		}
	}
}
