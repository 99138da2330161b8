//go:build linux

package banstate

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// unmapFile removes every memory mapping of the file f still has in this
// process. bbolt maps the file; when it panics on a damaged file half-way
// through opening, it never unmaps it, and the mapping keeps the open file
// (and bbolt's flock on it) alive after the file is closed.
func unmapFile(f *os.File) {
	st, err := f.Stat()
	if err != nil {
		return
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(sys.Dev), unix.Minor(sys.Dev))
	ino := strconv.FormatUint(sys.Ino, 10)
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer maps.Close()
	type span struct{ from, to uintptr }
	var spans []span
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// address perms offset dev inode path
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || fs[3] != dev || fs[4] != ino {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		from, err1 := strconv.ParseUint(lo, 16, 64)
		to, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && to > from {
			spans = append(spans, span{uintptr(from), uintptr(to)})
		}
	}
	for _, s := range spans {
		_, _, _ = syscall.Syscall(syscall.SYS_MUNMAP, s.from, s.to-s.from, 0)
	}
}
