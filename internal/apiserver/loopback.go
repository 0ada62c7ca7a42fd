package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// LoopbackTransport is an http.RoundTripper for API clients that run in the
// server's own process (the scheduler and controller manager of `skiff
// server`): it hands each request to handler in a goroutine and streams the
// response back through memory, with no TLS, HTTP/2 framing or socket in
// between. The clients stay ordinary client-go clients and every request
// takes the handler's whole path (authentication, authorization, admission,
// metrics) as it would over the network. The requests carry cert as a
// verified client certificate, the identity those clients have over TLS.
//
// Each response body buffers at most loopbackWindow bytes the client has
// not read; beyond that the handler's writes wait, as they would for an
// HTTP/2 flow-control window, so a slow watcher still pushes back on the
// watch cache.
func LoopbackTransport(handler http.Handler, cert *x509.Certificate, opts ...LoopbackOption) http.RoundTripper {
	l := &loopback{handler: handler, tls: &tls.ConnectionState{
		Version:            tls.VersionTLS13,
		HandshakeComplete:  true,
		NegotiatedProtocol: "h2",
		PeerCertificates:   []*x509.Certificate{cert},
		VerifiedChains:     [][]*x509.Certificate{{cert}},
	}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// LoopbackOption changes what the loopback's clients get.
type LoopbackOption func(*loopback)

// WatchesWithoutManagedFields: watch events leave managedFields out, for
// clients that drop them anyway (informers with a transform that clears
// them, as every in-process component has): neither side encodes or
// decodes them per event per watch. Only an in-process client can ask: the
// request's context carries the choice, no header or parameter does.
func WatchesWithoutManagedFields() LoopbackOption {
	return func(l *loopback) { l.omitManagedFields = true }
}

type omitManagedFieldsKey struct{}

// loopbackKey marks requests of in-process clients (LoopbackTransport).
type loopbackKey struct{}

func fromLoopback(ctx context.Context) bool {
	v, _ := ctx.Value(loopbackKey{}).(bool)
	return v
}

// watchOmitsManagedFields reports whether the request's client asked for
// watch events without managedFields.
func watchOmitsManagedFields(ctx context.Context) bool {
	v, _ := ctx.Value(omitManagedFieldsKey{}).(bool)
	return v
}

const (
	// loopbackWindow is how much response a client may leave unread.
	loopbackWindow = 1 << 20
	// loopbackKeep is the largest buffer a drained body keeps.
	loopbackKeep = 32 << 10
)

type loopback struct {
	handler           http.Handler
	tls               *tls.ConnectionState
	omitManagedFields bool
}

func (l *loopback) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	ctx = context.WithValue(ctx, loopbackKey{}, true)
	if l.omitManagedFields {
		ctx = context.WithValue(ctx, omitManagedFieldsKey{}, true)
	}
	sr := req.Clone(ctx)
	sr.RequestURI = req.URL.RequestURI()
	sr.Host = req.URL.Host
	sr.URL.Scheme, sr.URL.Host = "", ""
	sr.RemoteAddr = "127.0.0.1:0"
	sr.Proto, sr.ProtoMajor, sr.ProtoMinor = "HTTP/2.0", 2, 0
	// Each request gets its own copy: handlers may keep the pointer.
	state := *l.tls
	sr.TLS = &state
	if sr.Body == nil {
		sr.Body = http.NoBody
	}

	body := &loopbackBody{cancel: cancel}
	body.cond.L = &body.mu
	w := &loopbackWriter{header: http.Header{}, body: body, headers: make(chan struct{})}
	go func() {
		defer func() {
			err := io.EOF
			if p := recover(); p != nil {
				err = fmt.Errorf("loopback handler: %v", p)
			}
			w.finish(err)
			// As net/http: the request ends with its handler.
			cancel()
			if req.Body != nil {
				req.Body.Close()
			}
		}()
		l.handler.ServeHTTP(w, sr)
	}()
	select {
	case <-w.headers:
	case <-req.Context().Done():
		cancel()
		return nil, req.Context().Err()
	}
	if w.err != nil {
		cancel()
		return nil, w.err
	}
	resp := &http.Response{
		Status:        fmt.Sprintf("%d %s", w.code, http.StatusText(w.code)),
		StatusCode:    w.code,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        w.sent,
		Body:          body,
		ContentLength: -1,
		Request:       req,
	}
	if req.Method == http.MethodHead {
		resp.Body = http.NoBody
		body.Close()
	}
	return resp, nil
}

// loopbackWriter is the handler's side: headers are handed over on the
// first WriteHeader, Write or Flush, the body through loopbackBody.
type loopbackWriter struct {
	header  http.Header
	body    *loopbackBody
	once    sync.Once
	headers chan struct{} // closed once code and sent (or err) are set
	code    int
	sent    http.Header
	err     error // the handler failed before it sent headers
}

func (w *loopbackWriter) Header() http.Header { return w.header }

func (w *loopbackWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 {
		return // informational: nothing to hand over
	}
	w.once.Do(func() { w.send(code) })
}

// send hands the headers over, without the hop-by-hop ones net/http
// strips from a response.
func (w *loopbackWriter) send(code int) {
	w.code, w.sent = code, w.header.Clone()
	w.sent.Del("Transfer-Encoding")
	w.sent.Del("Connection")
	close(w.headers)
}

func (w *loopbackWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.write(p)
}

// Flush sends the headers; written bytes are readable at once anyway.
func (w *loopbackWriter) Flush() { w.WriteHeader(http.StatusOK) }

// finish ends the response when the handler returns: headers it never
// sent are a 200 with no body (as net/http), unless it panicked first.
func (w *loopbackWriter) finish(err error) {
	w.once.Do(func() {
		if err != io.EOF {
			w.err = err
			close(w.headers)
			return
		}
		w.send(http.StatusOK)
	})
	w.body.closeWrite(err)
}

// loopbackBody is a bounded in-memory pipe from the handler to the client.
type loopbackBody struct {
	mu     sync.Mutex
	cond   sync.Cond
	buf    []byte
	off    int
	werr   error // the handler is done: io.EOF or why it failed
	closed bool  // the client closed the body
	cancel context.CancelFunc
}

func (b *loopbackBody) write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for len(p) > 0 {
		for !b.closed && len(b.buf)-b.off >= loopbackWindow {
			b.cond.Wait()
		}
		if b.closed {
			return n, io.ErrClosedPipe
		}
		c := min(len(p), loopbackWindow-(len(b.buf)-b.off))
		b.buf = append(b.buf, p[:c]...)
		p, n = p[c:], n+c
		b.cond.Broadcast()
	}
	return n, nil
}

func (b *loopbackBody) closeWrite(err error) {
	b.mu.Lock()
	if b.werr == nil {
		b.werr = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *loopbackBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.closed && b.off == len(b.buf) && b.werr == nil {
		b.cond.Wait()
	}
	if b.closed {
		return 0, errors.New("read on closed response body")
	}
	if b.off < len(b.buf) {
		n := copy(p, b.buf[b.off:])
		b.off += n
		if b.off == len(b.buf) {
			// Drained: keep a small buffer for the next event of a
			// watch, not a large one a burst or a list grew.
			b.buf, b.off = b.buf[:0], 0
			if cap(b.buf) > loopbackKeep {
				b.buf = nil
			}
		}
		b.cond.Broadcast()
		return n, nil
	}
	return 0, b.werr
}

// Close ends the request: the handler's context is cancelled (a watch
// stops) and its further writes fail.
func (b *loopbackBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.buf, b.off = nil, 0
	b.cond.Broadcast()
	b.mu.Unlock()
	b.cancel()
	return nil
}
