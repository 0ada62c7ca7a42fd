package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// execIdleTimeout ends an exec session with no traffic.
const execIdleTimeout = 4 * time.Hour

// serveExec asks the runtime for an exec session and connects the client
// to it: SPDY is proxied to the runtime's streaming server as it is;
// WebSocket (v5.channel.k8s.io, v4) is terminated here and spoken to the
// runtime as SPDY, which containerd's server supports in every version.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	req := &runtimeapi.ExecRequest{Cmd: q["command"], Tty: flag(q, "tty"), Stdin: flag(q, "stdin"),
		Stdout: flag(q, "stdout"), Stderr: flag(q, "stderr")}
	if len(req.Cmd) == 0 {
		http.Error(w, "you must specify at least 1 command", http.StatusBadRequest)
		return
	}
	id, ok := s.runningContainer(w, r, req.Stdin, req.Stdout, req.Stderr)
	if !ok {
		return
	}
	if req.Tty {
		req.Stderr = false // a terminal merges stderr into stdout
	}
	req.ContainerId = id
	raw, err := s.cfg.Runtime.Exec(ctx, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.serveStream(w, r, raw, req)
}

// serveStream connects the client to the runtime's streaming URL raw of an
// exec or attach session (the two speak the same stream protocol).
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, raw string, req *runtimeapi.ExecRequest) {
	loc, err := url.Parse(raw)
	if err != nil {
		http.Error(w, fmt.Sprintf("runtime streaming URL %q: %v", raw, err), http.StatusInternalServerError)
		return
	}
	if wsstream.IsWebSocketRequest(r) {
		s.execWebSocket(w, r, loc, req)
		return
	}
	h := proxy.NewUpgradeAwareHandler(loc, http.DefaultTransport, false, true, responder{s})
	h.ServeHTTP(w, r)
}

// execWebSocket bridges a WebSocket client to the runtime's SPDY server,
// like kube-apiserver's stream translator.
func (s *Server) execWebSocket(w http.ResponseWriter, r *http.Request, loc *url.URL, req *runtimeapi.ExecRequest) {
	ch := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{ch(req.Stdin, wsstream.ReadChannel), ch(req.Stdout, wsstream.WriteChannel),
		ch(req.Stderr, wsstream.WriteChannel), wsstream.WriteChannel, ch(req.Tty, wsstream.ReadChannel)}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		"v5.channel.k8s.io": {Binary: true, Channels: channels},
		"v4.channel.k8s.io": {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(execIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		s.log.Debug("exec websocket", "err", err)
		return
	}
	defer conn.Close()
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: loc.Scheme + "://" + loc.Host}, http.MethodPost, loc)
	if err != nil {
		writeExecStatus(streams[3], err)
		return
	}
	opts := remotecommand.StreamOptions{Tty: req.Tty}
	if req.Stdin {
		opts.Stdin = streams[0]
	}
	if req.Stdout {
		opts.Stdout = streams[1]
	}
	if req.Stderr {
		opts.Stderr = streams[2]
	}
	if req.Tty {
		opts.TerminalSizeQueue = &sizeQueue{json.NewDecoder(streams[4])}
	}
	writeExecStatus(streams[3], ex.StreamWithContext(r.Context(), opts))
}

// writeExecStatus reports the result on the error channel as a Status, as
// the kubelet does: Success, or the exit code as a NonZeroExitCode cause.
func writeExecStatus(w io.Writer, err error) {
	st := metav1.Status{Status: metav1.StatusSuccess}
	var exit exec.CodeExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		st = metav1.Status{Status: metav1.StatusFailure, Reason: "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: %d", exit.Code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(exit.Code)}}}}
	default:
		st = metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: err.Error()}
	}
	b, _ := json.Marshal(st)
	w.Write(b)
}

type sizeQueue struct{ dec *json.Decoder }

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	var sz remotecommand.TerminalSize
	if err := q.dec.Decode(&sz); err != nil {
		return nil
	}
	return &sz
}

type responder struct{ s *Server }

func (r responder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	r.s.log.Debug("exec proxy", "err", err)
	http.Error(w, err.Error(), http.StatusBadGateway)
}

func flag(q url.Values, name string) bool {
	v, _ := strconv.ParseBool(q.Get(name))
	return v
}

// runningContainer is what exec and attach check first: at least one
// stream asked for, and the request's container exists and runs. It
// answers the client itself when a check fails.
func (s *Server) runningContainer(w http.ResponseWriter, r *http.Request, stdin, stdout, stderr bool) (string, bool) {
	if !stdin && !stdout && !stderr {
		http.Error(w, "you must specify at least one of stdin, stdout, stderr", http.StatusBadRequest)
		return "", false
	}
	c, err := s.findContainer(r.Context(), r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"), false)
	if err != nil {
		containerError(w, err)
		return "", false
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		http.Error(w, fmt.Sprintf("container %s is not running", r.PathValue("container")), http.StatusBadRequest)
		return "", false
	}
	return c.Id, true
}
