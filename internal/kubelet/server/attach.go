package server

import (
	"net/http"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// serveAttach connects the client to the main process of a running
// container (its stdio as the runtime keeps it), over SPDY or WebSocket
// as serveExec does.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	req := &runtimeapi.AttachRequest{Tty: flag(q, "tty"), Stdin: flag(q, "stdin"),
		Stdout: flag(q, "stdout"), Stderr: flag(q, "stderr")}
	id, ok := s.runningContainer(w, r, req.Stdin, req.Stdout, req.Stderr)
	if !ok {
		return
	}
	if req.Tty {
		req.Stderr = false // a terminal merges stderr into stdout
	}
	req.ContainerId = id
	raw, err := s.cfg.Runtime.Attach(ctx, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.serveStream(w, r, raw, &runtimeapi.ExecRequest{ContainerId: id, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}
