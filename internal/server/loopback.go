package server

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-sh/skiff/internal/apiserver"
)

// loopbackConfig is the client configuration of the in-process scheduler
// and controller manager: the admin kubeconfig's, with every request handed
// to the API server's handler in memory (apiserver.LoopbackTransport) as
// the kubeconfig's client certificate. They stay client-go API clients;
// what they no longer pay for is TLS, HTTP/2 framing and loopback sockets,
// which cost as much CPU as the handler itself for the small requests and
// watch events they exchange with it. The TLS settings stay in the config
// (the controller manager publishes its CA), but no connection is dialled.
func loopbackConfig(kubeconfig string, handler http.Handler) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("in-process clients: %w", err)
	}
	block, _ := pem.Decode(rc.CertData)
	if block == nil {
		return nil, fmt.Errorf("in-process clients: no client certificate in %s", kubeconfig)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("in-process clients: %w", err)
	}
	// Every in-process watch feeds an informer whose transform drops
	// managedFields: the watch handler leaves them out instead.
	rt := apiserver.LoopbackTransport(handler, cert, apiserver.WatchesWithoutManagedFields())
	rc.WrapTransport = func(http.RoundTripper) http.RoundTripper { return rt }
	return rc, nil
}
