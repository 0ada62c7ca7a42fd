package proxy

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"
)

// TestRealNFTables runs the same syncs against the kernel (root only): the
// rendered syntax must be what nft accepts.
func TestRealNFTables(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft")
	}
	table := fmt.Sprintf("skp-unit-%d", os.Getpid())
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	tp := newTestProxy(t)
	tp.Proxy.nft = nft
	tp.Proxy.cfg.Table = table
	tp.putSvc(makeSvc("web").ip("10.96.0.10").port(80).nodePort(30080).lb("203.0.113.10").obj())
	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.5", "n1"), ready("10.244.0.6", "n2")))
	tp.putSvc(makeSvc("aff").ip("10.96.0.11").port(80).affinity(30).obj())
	tp.putSlice(makeSlice("aff", "aff-1", 8080, ready("10.244.0.7", "n1")))
	tp.putSvc(makeSvc("loc").ip("10.96.0.12").port(80).nodePort(30081).externalLocal().internalLocal().obj())
	tp.putSlice(makeSlice("loc", "loc-1", 8080, ready("10.244.0.8", "n1"), ready("10.244.1.8", "n2")))
	tp.putSvc(makeSvc("empty").ip("10.96.0.13").port(80).nodePort(30082).obj())
	tp.requeueFull()
	tp.sync()
	tp.sync() // a second full sync replaces the table
	tp.requeueFull()
	tp.sync()

	tp.putSlice(makeSlice("web", "web-1", 8080, ready("10.244.0.6", "n2")))
	tp.putSvc(makeSvc("aff").ip("10.96.0.11").port(80).affinity(60).obj())
	tp.svcs.Delete(makeSvc("loc").obj())
	tp.enqueue("ns/loc")
	tp.sync()

	out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	s := string(out)
	for _, want := range []string{"dnat to 10.244.0.6:8080", "timeout 1m", "203.0.113.10 . tcp . 80 : goto external-",
		"10.96.0.13 . tcp . 80 : goto reject-chain", "tcp . 30082 : goto reject-chain"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q:\n%s", want, s)
		}
	}
	for _, nw := range []string{"10.244.0.5", "ns/loc", "timeout 30s"} {
		if strings.Contains(s, nw) {
			t.Errorf("unexpected %q:\n%s", nw, s)
		}
	}
}
