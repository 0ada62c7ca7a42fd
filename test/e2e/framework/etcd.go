package framework

import (
	"context"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/storage/etcd"
)

// StartEtcd starts an etcd member in the test process, to play an external
// etcd cluster, and returns it with the `--etcd-servers` flag that points a
// server at it. It stops when the test ends.
func StartEtcd(t testing.TB) (*etcd.Embedded, string) {
	t.Helper()
	e, err := etcd.StartEmbedded(context.Background(), etcd.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, "--etcd-servers=" + strings.Join(e.Endpoints(), ",")
}
