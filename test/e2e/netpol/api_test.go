package netpol

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/test/e2e/framework"
)

// TestNetworkPolicyAPI: kubectl creates, lists and rejects NetworkPolicies
// as against kube-apiserver (no node, no root needed).
func TestNetworkPolicyAPI(t *testing.T) {
	srv := framework.StartServer(t)
	k := srv.NewKubectl(t, framework.DefaultKubectl)
	k.Apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {access: "yes"}}}]
    ports: [{port: http}, {port: 8000, endPort: 8100, protocol: UDP}]
`)
	out := k.MustRun("get", "networkpolicies")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 ||
		strings.Join(strings.Fields(lines[0]), " ") != "NAME POD-SELECTOR AGE" || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "web app=web ") {
		t.Errorf("kubectl get networkpolicies:\n%s", out)
	}
	// Defaults: protocol TCP on the named port, policyTypes [Ingress].
	if got := k.MustRun("get", "netpol", "web", "-o", "jsonpath={.spec.policyTypes} {.spec.ingress[0].ports[0].protocol}"); got != `["Ingress"] TCP` {
		t.Errorf("defaults: %q", got)
	}
	k.Stdin = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress, Sideways]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]
    ports: [{port: 90, endPort: 80}]
`
	r := k.Run("apply", "-f", "-")
	k.Stdin = ""
	for _, want := range []string{`spec.policyTypes[1]: Unsupported value: "Sideways"`,
		"spec.egress[0].to[0].ipBlock.except[0]: Invalid value: \"10.1.0.0/24\": must be a strict subset of `cidr`",
		"spec.egress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`"} {
		if r.Err == nil || !strings.Contains(r.Stderr, want) {
			t.Errorf("invalid policy: want %q; err %v, stderr:\n%s", want, r.Err, r.Stderr)
		}
	}
	if !strings.Contains(r.Stderr, "is invalid") {
		t.Errorf("want a 422 Invalid, stderr:\n%s", r.Stderr)
	}
}
