package kubelet

import (
	"os"
	"syscall"
)

type owner struct {
	gid  uint32
	mode uint32
}

func statOwner(path string) (owner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return owner{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return owner{gid: st.Gid, mode: st.Mode}, nil
}
