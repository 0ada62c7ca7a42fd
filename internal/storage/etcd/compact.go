package etcd

import (
	"context"
	"errors"
	"time"

	rpctypes "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Compact discards revisions older than rev. Compacting to a revision that
// is already compacted is not an error.
func Compact(ctx context.Context, client *clientv3.Client, rev int64) error {
	_, err := client.Compact(ctx, rev, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return err
	}
	return nil
}

// StartCompactor compacts, every interval, up to the revision seen at the
// previous tick, so watchers always have at least one interval of history.
// It returns when ctx ends.
func StartCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		resp, err := client.Get(ctx, "/skiff-revision-probe", clientv3.WithCountOnly())
		if err != nil {
			continue
		}
		if last > 0 {
			_ = Compact(ctx, client, last)
		}
		last = resp.Header.Revision
	}
}
