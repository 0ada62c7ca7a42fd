package framework

import (
	"os"
	"testing"
)

// TestNginxTarball builds the image (downloading the packages once).
func TestNginxTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Debian packages")
	}
	p := NginxTarball(t)
	st, err := os.Stat(p)
	if err != nil || st.Size() < 1<<20 {
		t.Fatalf("nginx tarball %s: %v %v", p, st, err)
	}
}
