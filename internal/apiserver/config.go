package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"time"

	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/serviceaccount"
	"github.com/skiff-sh/skiff/internal/storage"
)

// StorageFactory returns the store for one resource.
type StorageFactory func(res *registry.Resource) (storage.Interface, error)

// Config is everything New needs.
type Config struct {
	// Resources to serve; see registry/all.
	Resources []*registry.Resource
	// Storage builds each resource's store.
	Storage StorageFactory
	// ClientCAs verifies client certificates. A request without a verified
	// certificate gets 401. Nil disables authentication (unit tests only).
	ClientCAs *x509.CertPool
	// CABundle (PEM) is served unauthenticated at /cacerts for joining
	// agents, who check it against their token's hash.
	CABundle []byte
	// ServiceCIDR is where Service clusterIPs come from.
	ServiceCIDR *net.IPNet
	// Version is served at /version.
	Version version.Info
	// KubeletClientCert is presented to kubelets (pods/log, pods/exec).
	KubeletClientCert *tls.Certificate
	// KubeletCA verifies kubelets' serving certificates (the cluster CA,
	// which signs them through kubelet-serving CSRs); nil: the system roots.
	KubeletCA *x509.CertPool
	// ServiceAccountIssuer signs TokenRequests and verifies service
	// account bearer tokens; nil turns both off.
	ServiceAccountIssuer *serviceaccount.Issuer
	// DisabledAdmission names built-in admission plugins turned off
	// (upstream's --disable-admission-plugins), e.g. "ServiceAccount".
	DisabledAdmission map[string]bool
	// MaxMutatingInFlight is how many mutating requests of network clients
	// run at once; the others wait in a FIFO line of at most
	// MaxMutatingWaiting (429 past it or after MaxMutatingWait). Zero runs
	// every request as it comes. In-process clients never wait.
	MaxMutatingInFlight int
	MaxMutatingWaiting  int
	MaxMutatingWait     time.Duration
	Logger              *slog.Logger
}

// Validate rejects an incomplete config.
func (c *Config) Validate() error {
	if len(c.Resources) == 0 {
		return fmt.Errorf("apiserver: no resources")
	}
	if c.Storage == nil {
		return fmt.Errorf("apiserver: no storage factory")
	}
	if c.MaxMutatingInFlight < 0 || c.MaxMutatingWaiting < 0 || c.MaxMutatingWait < 0 {
		return fmt.Errorf("apiserver: negative mutating request limits")
	}
	if c.MaxMutatingInFlight > 0 && (c.MaxMutatingWaiting == 0 || c.MaxMutatingWait == 0) {
		return fmt.Errorf("apiserver: a mutating request limit needs a waiting line and a longest wait")
	}
	return nil
}
