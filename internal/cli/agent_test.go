package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestNodeFlags: bad --node-label, --node-taint and
// --container-runtime-endpoint values end `skiff agent` and `skiff server`
// with exit code 1 and a message naming the value, before anything starts.
func TestNodeFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-label", "noequals"}, `--node-label "noequals": want key=value`},
		{[]string{"--node-label", "a=b,bad key=c"}, `--node-label "bad key": invalid key`},
		{[]string{"--node-label", "k=" + strings.Repeat("v", 64)}, "invalid value"},
		{[]string{"--node-label", "node-role.kubernetes.io/worker=true"}, "unknown 'kubernetes.io' or 'k8s.io' labels node-role.kubernetes.io/worker"},
		{[]string{"--node-label", "ok=1", "--node-label", "foo.k8s.io/x=y"}, "foo.k8s.io/x"},
		{[]string{"--node-taint", "k=v"}, `--node-taint "k=v": want key=value:Effect`},
		{[]string{"--node-taint", "k=v:NoWay"}, `effect "NoWay"`},
		{[]string{"--node-taint", "-k=v:NoSchedule"}, `--node-taint "-k": invalid key`},
		{[]string{"--node-taint", "k=a:NoSchedule,k=b:NoSchedule"}, "a second taint with key k"},
		{[]string{"--container-runtime-endpoint", "tcp://1.2.3.4:5"}, "only unix:// sockets"},
		{[]string{"--container-runtime-endpoint", "run/c.sock"}, "absolute path"},
		{[]string{"--cni-conf-dir", "net.d"}, "--cni-conf-dir"},
	} {
		for _, cmd := range []string{"agent", "server"} {
			args := append([]string{cmd, "--data-dir", t.TempDir()}, tt.args...)
			t.Run(strings.Join(args[:1], " ")+" "+strings.Join(tt.args, " "), func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := Run(context.Background(), args, &out, &errb); code != 1 {
					t.Errorf("exit code %d, want 1 (stderr %q)", code, errb.String())
				}
				if !strings.Contains(errb.String(), tt.want) {
					t.Errorf("stderr %q lacks %q", errb.String(), tt.want)
				}
			})
		}
	}
}

func TestAppendFlag(t *testing.T) {
	var n nodeFlags
	for _, s := range []string{"a=1,b=2", "c=3"} {
		if err := (appendFlag{&n.labels}).Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if got := (appendFlag{&n.labels}).String(); got != "a=1,b=2,c=3" {
		t.Fatalf("got %q", got)
	}
	if err := n.validate(); err != nil {
		t.Fatal(err)
	}
}
