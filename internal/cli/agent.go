package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/connrotation"

	"github.com/skiff-sh/skiff/internal/agent"
	"github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/internal/server"
)

// runAgent runs `skiff agent`: containerd and the kubelet of one node. It
// authenticates with --kubeconfig, or joins with --server and --token (a
// node certificate through a CertificateSigningRequest, see
// internal/agent/join.go).
func runAgent(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("skiff agent", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	serverURL := fs.String("server", "", "API server URL (default: the kubeconfig's)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig the agent authenticates with (or join with --server and --token)")
	token := fs.String("token", "", "node token from the server's <data-dir>/node-token (K10<ca sha256>::<id>.<secret>) to join with")
	dataDir := fs.String("data-dir", server.DefaultConfig().DataDir, "data directory of the agent (containerd, images, pod logs)")
	nodeName := fs.String("node-name", "", "name of the Node (default: host name)")
	nodeIP := fs.String("node-ip", "", "the node's InternalIP (default: the host's first IPv4 address)")
	bridge := fs.String("cni-bridge", "", "Linux bridge of the pod network (default skiff0)")
	kubeletPort := fs.Int("kubelet-port", 10250, "port of the kubelet API (logs, exec)")
	netpolTable := fs.String("netpol-table", "skiff-netpol", "nftables table (family inet) of the NetworkPolicy enforcer")
	disableNetpol := fs.Bool("disable-network-policy", false, "do not enforce NetworkPolicies on this node")
	var clusterDNS []string
	fs.Var(listFlag{&clusterDNS}, "cluster-dns", "comma-separated resolvers of ClusterFirst pods (default 10.43.0.10, the kube-dns Service of the default --service-cidr)")
	clusterDomain := fs.String("cluster-domain", dns.DefaultClusterDomain, "the cluster's DNS zone")
	disableDNS := fs.Bool("disable-dns", false, "do not run this node's cluster DNS server")
	disableHostGW := fs.Bool("disable-host-gw", false, "do not route other nodes' podCIDRs via their InternalIPs")
	proxyTable := fs.String("proxy-table", "", "nftables table of the Service proxy (default skiff-proxy)")
	disableProxy := fs.Bool("disable-proxy", false, "run no Service proxy")
	nf := nodeFlags{}
	nf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	// Bad labels, taints or endpoint end the start-up before a join.
	if err := nf.validate(); err != nil {
		return err
	}
	if len(clusterDNS) == 0 {
		clusterDNS = []string{"10.43.0.10"}
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	switch {
	case *kubeconfig != "" && *token != "":
		return errors.New("--kubeconfig and --token are mutually exclusive")
	case *token != "":
		if *serverURL == "" {
			return errors.New("--token needs --server https://HOST:PORT")
		}
		name := *nodeName
		if name == "" {
			if name, err = os.Hostname(); err != nil {
				return fmt.Errorf("--node-name: host name: %w", err)
			}
		}
		*nodeName = name
		path, err := agent.Join(ctx, agent.JoinConfig{Server: *serverURL, Token: *token, DataDir: dir, NodeName: name, Logger: env.Logger})
		if err != nil {
			return err
		}
		*kubeconfig = path
	case *kubeconfig == "":
		if _, err := os.Stat(agent.KubeletKubeconfigPath(dir)); err != nil {
			return errors.New("--kubeconfig is required (or --server and --token to join)")
		}
		// An earlier join left a node kubeconfig; use it.
		*kubeconfig = agent.KubeletKubeconfigPath(dir)
	}
	rc, err := clientcmd.BuildConfigFromFlags(*serverURL, *kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", *kubeconfig, err)
	}
	rc.UserAgent = "skiff-agent"
	rc.QPS, rc.Burst = 50, 100
	// The node's own certificate from a join is renewed in place
	// (internal/agent/cert_client.go); closing the client's connections
	// after a renewal makes it handshake with the new one.
	var clientCertFile string
	var rotated func()
	if own := filepath.Join(dir, "agent", agent.ClientCertFile); rc.CertFile == own && rc.KeyFile == own {
		d := connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
		rc.Dial, clientCertFile, rotated = d.DialContext, own, d.CloseAll
	}
	// Protobuf, as upstream's kubelet (--kube-api-content-type): the pod
	// watch and status writes of a pod burst cost both sides less than JSON.
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ca := rc.CAData
	if len(ca) == 0 && rc.CAFile != "" {
		if ca, err = os.ReadFile(rc.CAFile); err != nil {
			return fmt.Errorf("--kubeconfig: %w", err)
		}
	}
	a, err := agent.New(agent.Config{DataDir: dir, Client: cs, NodeName: *nodeName, NodeIP: *nodeIP,
		Bridge: *bridge, KubeletVersion: server.Version.GitVersion, ClusterCA: ca, KubeletPort: *kubeletPort,
		ClientCertFile: clientCertFile, ClientRotated: rotated,
		NetpolTable: *netpolTable, DisableNetworkPolicy: *disableNetpol, ProxyTable: *proxyTable, DisableProxy: *disableProxy,
		ClusterDNS: clusterDNS, ClusterDomain: *clusterDomain, DisableDNS: *disableDNS, DisableHostGW: *disableHostGW,
		NodeLabels: nf.labels, NodeTaints: nf.taints, ContainerRuntimeEndpoint: nf.runtimeEndpoint, CNIConfDir: nf.cniConfDir,
		Logger: env.Logger})
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-a.Ready():
			fmt.Fprintf(env.Stdout, "skiff agent is ready; node: %s\n", a.NodeName())
		case <-ctx.Done():
		}
	}()
	return a.Run(ctx)
}

// nodeFlags are the node's registration and runtime flags, the same on
// `skiff agent` and `skiff server` (for its in-process agent).
type nodeFlags struct {
	labels, taints              []string
	runtimeEndpoint, cniConfDir string
}

func (n *nodeFlags) register(fs *flag.FlagSet) {
	fs.Var(appendFlag{&n.labels}, "node-label", "label key=value to register the node with (repeatable or comma-separated); "+
		"kubernetes.io and k8s.io keys only in the kubelet's allowed set, as upstream's --node-labels; re-applied at each start")
	fs.Var(appendFlag{&n.taints}, "node-taint", "taint key=value:Effect (or key:Effect) to register the node with (repeatable or comma-separated; "+
		"Effect NoSchedule, PreferNoSchedule or NoExecute), as upstream's --register-with-taints")
	fs.StringVar(&n.runtimeEndpoint, "container-runtime-endpoint", "", "CRI socket (unix:///path or a path) of an existing containerd or CRI-O "+
		"to use instead of starting a containerd of the agent's own")
	fs.StringVar(&n.cniConfDir, "cni-conf-dir", "", "directory the pod network's CNI config is written to "+
		"(default: the agent's containerd's, or "+agent.DefaultExternalCNIConfDir+" with --container-runtime-endpoint)")
}

func (n *nodeFlags) validate() error {
	if _, err := agent.ParseNodeLabels(n.labels); err != nil {
		return err
	}
	if _, err := agent.ParseNodeTaints(n.taints); err != nil {
		return err
	}
	if _, err := agent.ParseRuntimeEndpoint(n.runtimeEndpoint); err != nil {
		return err
	}
	if n.cniConfDir != "" && !filepath.IsAbs(n.cniConfDir) {
		return fmt.Errorf("--cni-conf-dir %q: must be an absolute path", n.cniConfDir)
	}
	return nil
}

// appendFlag is a repeatable flag: each use appends its value (which may
// itself be a comma list, split when parsed).
type appendFlag struct{ v *[]string }

func (a appendFlag) String() string {
	if a.v == nil {
		return ""
	}
	return strings.Join(*a.v, ",")
}

func (a appendFlag) Set(s string) error {
	*a.v = append(*a.v, s)
	return nil
}
