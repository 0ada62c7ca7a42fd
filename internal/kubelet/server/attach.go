package server

import (
	"fmt"
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
	if !req.Stdin && !req.Stdout && !req.Stderr {
		http.Error(w, "you must specify at least one of stdin, stdout, stderr", http.StatusBadRequest)
		return
	}
	if req.Tty {
		req.Stderr = false // a terminal merges stderr into stdout
	}
	c, err := s.findContainer(ctx, r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container"), false)
	if err != nil {
		containerError(w, err)
		return
	}
	if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		http.Error(w, fmt.Sprintf("container %s is not running", r.PathValue("container")), http.StatusBadRequest)
		return
	}
	req.ContainerId = c.Id
	raw, err := s.cfg.Runtime.Attach(ctx, req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.serveStream(w, r, raw, &runtimeapi.ExecRequest{ContainerId: c.Id, Tty: req.Tty, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}
