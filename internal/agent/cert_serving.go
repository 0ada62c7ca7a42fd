package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// servingCerts gives the kubelet API the node's serving certificate from
// the cluster CA, as upstream's kubelet with serverTLSBootstrap: once the
// Node has addresses it requests CN=system:node:<name>, O=system:nodes
// with the node's host names and IPs as SANs from the
// kubernetes.io/kubelet-serving signer, serves it as soon as it is issued
// (GetCertificate; the self-signed certificate until then), keeps it in
// ServingCertFile for the next start, and renews it at 70-90% of its
// lifetime or when the Node's addresses change.
type servingCerts struct {
	path   string
	node   string
	client kubernetes.Interface
	roots  *x509.CertPool
	log    *slog.Logger
	// poll is how often the Node's addresses are read.
	poll time.Duration
	cur  atomic.Pointer[tls.Certificate]
}

func newServingCerts(cfg Config, roots *x509.CertPool) *servingCerts {
	return &servingCerts{path: filepath.Join(cfg.DataDir, "agent", ServingCertFile), node: cfg.NodeName, client: cfg.Client,
		roots: roots, log: cfg.Logger.With("component", "serving-cert"), poll: 5 * time.Second}
}

// GetCertificate is the kubelet API's tls.Config.GetCertificate: nil (the
// self-signed certificate) until the cluster has issued one.
func (s *servingCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// Run loads the certificate of an earlier start and requests and renews
// certificates until ctx ends.
func (s *servingCerts) Run(ctx context.Context) {
	if c, err := loadCertAndKey(s.path); err == nil && s.usable(c.Leaf) {
		s.cur.Store(c)
		s.log.Info("serving the kubelet certificate from an earlier start", "notAfter", c.Leaf.NotAfter)
	}
	deadline := time.Time{}
	if c := s.cur.Load(); c != nil {
		deadline = rotationDeadline(c.Leaf, jitter())
	}
	fails := 0
	for {
		dns, ips, err := s.nodeNames(ctx)
		switch {
		case err != nil:
			s.log.Debug("read node addresses", "err", err)
		case len(dns)+len(ips) == 0:
			// The kubelet has not posted its addresses yet.
		default:
			c := s.cur.Load()
			why := ""
			switch {
			case c == nil:
				why = "no certificate from the cluster yet"
			case !sameNames(c.Leaf, dns, ips):
				why = "the node's addresses changed"
			case !time.Now().Before(deadline):
				why = "rotation deadline reached"
			}
			if why == "" {
				break
			}
			s.log.Info("requesting a kubelet serving certificate", "reason", why, "dns", dns, "ips", ips)
			if err := s.renew(ctx, dns, ips); err != nil {
				if ctx.Err() != nil {
					return
				}
				fails++
				s.log.Error("kubelet serving certificate request failed; retrying", "err", err, "in", backoff(fails))
				if !sleepUntil(ctx, time.Now().Add(backoff(fails))) {
					return
				}
				continue
			}
			fails = 0
			deadline = rotationDeadline(s.cur.Load().Leaf, jitter())
			s.log.Info("serving the kubelet certificate from the cluster CA", "notAfter", s.cur.Load().Leaf.NotAfter, "rotation", deadline)
		}
		wait := s.poll
		if s.cur.Load() == nil {
			wait = 200 * time.Millisecond // the Node is being registered
		} else if d := time.Until(deadline); d < wait {
			wait = max(d, 0)
		}
		if !sleepUntil(ctx, time.Now().Add(wait)) {
			return
		}
	}
}

// usable: still valid, for the server-auth usage, chained to the cluster
// CA and for this node.
func (s *servingCerts) usable(c *x509.Certificate) bool {
	if c.Subject.CommonName != "system:node:"+s.node {
		return false
	}
	_, err := c.Verify(x509.VerifyOptions{Roots: s.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// nodeNames are the SANs a serving certificate needs: the Node's host
// names and IP addresses (upstream's kubelet takes the same from its
// node status).
func (s *servingCerts) nodeNames(ctx context.Context) ([]string, []net.IP, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := s.client.CoreV1().Nodes().Get(ctx, s.node, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	var dns []string
	var ips []net.IP
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			if !slices.Contains(dns, a.Address) {
				dns = append(dns, a.Address)
			}
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		}
	}
	return dns, ips, nil
}

func sameNames(c *x509.Certificate, dns []string, ips []net.IP) bool {
	if len(c.DNSNames) != len(dns) || len(c.IPAddresses) != len(ips) {
		return false
	}
	for _, d := range dns {
		if !slices.Contains(c.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// renew requests a serving certificate with a new key and serves it.
func (s *servingCerts) renew(ctx context.Context, dns []string, ips []net.IP) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req := certRequest{
		tmpl: &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + s.node, Organization: []string{"system:nodes"}},
			DNSNames: dns, IPAddresses: ips},
		signer: certificatesv1.KubeletServingSignerName,
		usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth},
		prefix: "csr-serving", node: s.node,
	}
	certPEM, err := req.request(ctx, s.client, key, s.log)
	if err != nil {
		return err
	}
	if err := writeCertAndKey(s.path, certPEM, key); err != nil {
		return err
	}
	c, err := loadCertAndKey(s.path)
	if err != nil {
		return err
	}
	if !s.usable(c.Leaf) {
		return errors.New("the issued serving certificate does not verify against the cluster CA")
	}
	s.cur.Store(c)
	return nil
}
