package images

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/skiff-sh/skiff/internal/agent/containerd"
	"github.com/skiff-sh/skiff/internal/kubelet/cri"
)

// AgentImport is the outcome of ImportIntoAgent.
type AgentImport struct {
	// Refs are the images imported into the running containerd.
	Refs []string
	// Queued is the copy in <data-dir>/agent/images when no containerd
	// answered; the agent imports it at its next start.
	Queued string
}

// ImportIntoAgent imports a tarball into the containerd of the agent that
// owns dataDir if it answers, and otherwise queues a copy for the agent's
// next start.
func ImportIntoAgent(ctx context.Context, dataDir, file string) (AgentImport, error) {
	if _, err := os.Stat(file); err != nil {
		return AgentImport{}, err
	}
	sock := containerd.Socket(dataDir)
	if running(ctx, sock) {
		refs, err := Importer{Address: sock}.Import(ctx, file)
		return AgentImport{Refs: refs}, err
	}
	dst := filepath.Join(Dir(dataDir), filepath.Base(file))
	if err := os.MkdirAll(Dir(dataDir), 0o700); err != nil {
		return AgentImport{}, fmt.Errorf("queue image: %w", err)
	}
	err := writeFileAtomic(dst, func(f *os.File) error {
		src, err := os.Open(file)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(f, src)
		return err
	})
	if err != nil {
		return AgentImport{}, fmt.Errorf("queue image: %w", err)
	}
	return AgentImport{Queued: dst}, nil
}

// running reports whether a containerd answers CRI on sock.
func running(ctx context.Context, sock string) bool {
	if _, err := os.Stat(sock); err != nil {
		return false
	}
	c, err := cri.Dial(sock, 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Version(ctx)
	return err == nil
}
