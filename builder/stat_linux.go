package builder

import (
	"io/fs"
	"syscall"
)

type statData struct {
	dev, ino     uint64
	mtime, ctime int64
}

func statOf(fi fs.FileInfo) statData {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statData{mtime: fi.ModTime().UnixNano()}
	}
	return statData{dev: uint64(st.Dev), ino: st.Ino, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

func ownerOf(fi fs.FileInfo) (int, int) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	return int(st.Uid), int(st.Gid)
}
