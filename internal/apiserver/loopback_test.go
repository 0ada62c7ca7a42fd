package apiserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func loopbackClient(h http.Handler) *http.Client {
	return &http.Client{Transport: LoopbackTransport(h, &x509.Certificate{Subject: pkix.Name{CommonName: "admin"}})}
}

func TestLoopbackRequestAndResponse(t *testing.T) {
	c := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.TLS == nil || len(r.TLS.VerifiedChains) != 1 || r.TLS.VerifiedChains[0][0].Subject.CommonName != "admin" {
			t.Errorf("TLS state %+v", r.TLS)
		}
		if r.URL.Path != "/api/v1/pods" || r.URL.Query().Get("limit") != "5" || r.Host != "127.0.0.1:6443" ||
			r.RequestURI != "/api/v1/pods?limit=5" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s host %s uri %s headers %v", r.Method, r.URL, r.Host, r.RequestURI, r.Header)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("got "))
		w.Write(body)
		w.Header().Set("X-Late", "ignored")
	}))
	req, _ := http.NewRequest(http.MethodPost, "https://127.0.0.1:6443/api/v1/pods?limit=5", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || string(got) != `got {"a":1}` || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("X-Late") != "" || resp.Header.Get("Transfer-Encoding") != "" {
		t.Fatalf("got %d %q headers %v", resp.StatusCode, got, resp.Header)
	}
}

func TestLoopbackNoWriteIs200(t *testing.T) {
	resp, err := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})).Get("https://x/healthz")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(got) != 0 {
		t.Fatalf("got %d %q", resp.StatusCode, got)
	}
}

func TestLoopbackPanicBeforeHeadersIsAnError(t *testing.T) {
	_, err := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })).Get("https://x/")
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}

// A watch: events reach the client while the handler still runs, and
// closing the body cancels the handler's context.
func TestLoopbackStreamsAndCancels(t *testing.T) {
	next := make(chan string)
	done := make(chan error, 1)
	c := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case s := <-next:
				w.Write([]byte(s))
			case <-r.Context().Done():
				done <- r.Context().Err()
				return
			}
		}
	}))
	resp, err := c.Get("https://x/api/v1/pods?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for _, ev := range []string{"one", "two"} {
		next <- ev
		n, err := resp.Body.Read(buf)
		if err != nil || string(buf[:n]) != ev {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, ev)
		}
	}
	resp.Body.Close()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler context: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the body did not cancel the handler")
	}
}

// The handler's writes wait while the client leaves a window's worth
// unread, and all bytes arrive in order.
func TestLoopbackBackpressure(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3*loopbackWindow/16+7)
	wrote := make(chan struct{})
	c := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(payload[:10])
		w.Write(payload[10:])
		close(wrote)
	}))
	resp, err := c.Get("https://x/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-wrote:
		t.Fatal("the handler wrote 3 windows nobody read")
	case <-time.After(100 * time.Millisecond):
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(payload))
	}
	<-wrote
}

// A client that gives up before the headers gets its context's error and
// the handler's context ends.
func TestLoopbackClientCancelsBeforeHeaders(t *testing.T) {
	done := make(chan struct{})
	c := loopbackClient(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(done)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://x/", nil)
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running")
	}
}
