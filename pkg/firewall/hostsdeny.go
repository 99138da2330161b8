package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// The hosts-deny backend keeps its lines between two marker comments.
// tcp_wrappers only ignores comments at the start of a line (a trailing
// "# quietwatch" would be read as two more client patterns), so the
// markers are lines of their own and every line between them is ours.
const (
	hostsDenyBegin = "# BEGIN quietwatch block: lines up to END are managed by block, do not edit"
	hostsDenyEnd   = "# END quietwatch block"
)

// HostsDeny is the hosts-deny backend: "ALL: <ip>" lines (IPv6 in
// brackets) in a tcp_wrappers hosts.deny file. Every change rewrites the
// file atomically (a temporary file renamed over it) and touches only the
// lines between its markers.
type HostsDeny struct {
	mu   sync.Mutex
	path string
	// createTemp and rename are os.CreateTemp and os.Rename; tests make
	// them fail.
	createTemp func(dir, pattern string) (*os.File, error)
	rename     func(oldpath, newpath string) error
}

// NewHostsDeny returns the backend for the file at path.
func NewHostsDeny(path string) *HostsDeny {
	return &HostsDeny{path: path, createTemp: os.CreateTemp, rename: os.Rename}
}

// Name implements Backend.
func (*HostsDeny) Name() string { return "hosts-deny" }

// HostsDenyLine returns the hosts.deny line that bans the network p:
// "ALL: 198.51.100.7", "ALL: [2001:db8::1]", "ALL: [2001:db8::]/64" (the
// tcp_wrappers form of an IPv6 network), "ALL: 198.51.100.0/255.255.255.0"
// (of an IPv4 one).
func HostsDenyLine(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case a.Is6() && p.IsSingleIP():
		return "ALL: [" + a.String() + "]"
	case a.Is6():
		return "ALL: [" + a.String() + "]/" + strconv.Itoa(p.Bits())
	case p.IsSingleIP():
		return "ALL: " + a.String()
	}
	mask := ^uint32(0) << (32 - p.Bits())
	m := netip.AddrFrom4([4]byte{byte(mask >> 24), byte(mask >> 16), byte(mask >> 8), byte(mask)})
	return "ALL: " + a.String() + "/" + m.String()
}

// hostsFile is a hosts.deny split around our block.
type hostsFile struct {
	before, after []string
	ours          map[netip.Prefix]bool
	mode          fs.FileMode
}

func (h *HostsDeny) read() (*hostsFile, error) {
	f := &hostsFile{ours: map[netip.Prefix]bool{}, mode: 0o644}
	data, err := os.ReadFile(h.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hosts-deny: %w", err)
	}
	if st, err := os.Stat(h.path); err == nil {
		f.mode = st.Mode().Perm()
	}
	state := 0 // 0 before, 1 inside, 2 after
	var inside []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case len(data) == 0:
		case state == 0 && line == hostsDenyBegin:
			state = 1
		case state == 1 && line == hostsDenyEnd:
			state = 2
		case state == 1:
			inside = append(inside, line)
		case state == 0:
			f.before = append(f.before, line)
		default:
			f.after = append(f.after, line)
		}
	}
	for _, line := range inside {
		if a, ok := parseHostsDenyLine(line); ok {
			f.ours[a] = true
		} else if state == 1 {
			// No END mark: the block was cut short (by hand?), so what
			// follows may be the admin's; keep what is not ours.
			f.after = append(f.after, line)
		}
		// Inside a complete block, a line that is not ours is dropped:
		// the block holds only what Sync and Add wrote.
	}
	return f, nil
}

// parseHostsDenyLine reads a line that HostsDenyLine wrote.
func parseHostsDenyLine(line string) (netip.Prefix, bool) {
	rest, ok := strings.CutPrefix(line, "ALL: ")
	if !ok {
		return netip.Prefix{}, false
	}
	bits := -1
	if v6, ok := strings.CutPrefix(rest, "["); ok {
		host, tail, ok := strings.Cut(v6, "]")
		if !ok {
			return netip.Prefix{}, false
		}
		rest = host
		if n, ok := strings.CutPrefix(tail, "/"); ok {
			if len(n) > 3 {
				return netip.Prefix{}, false
			}
			b, err := strconv.Atoi(n)
			if err != nil {
				return netip.Prefix{}, false
			}
			bits = b
		}
	} else if host, mask, ok := strings.Cut(rest, "/"); ok {
		m, err := netip.ParseAddr(mask)
		if err != nil || !m.Is4() {
			return netip.Prefix{}, false
		}
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		bits = 0
		for v&(1<<31) != 0 {
			bits++
			v <<= 1
		}
		rest = host
	}
	a, err := netip.ParseAddr(rest)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, false
	}
	if bits < 0 {
		bits = a.BitLen()
	}
	p, err := a.Prefix(bits)
	if err != nil || p.Addr() != a || HostsDenyLine(p) != line {
		return netip.Prefix{}, false
	}
	return p, true
}

func (h *HostsDeny) write(f *hostsFile) error {
	var b bytes.Buffer
	for _, l := range f.before {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(f.ours) > 0 {
		addrs := make([]netip.Prefix, 0, len(f.ours))
		for a := range f.ours {
			addrs = append(addrs, a)
		}
		b.WriteString(hostsDenyBegin + "\n")
		for _, a := range sortAddrs(addrs) {
			b.WriteString(HostsDenyLine(a))
			b.WriteByte('\n')
		}
		b.WriteString(hostsDenyEnd + "\n")
	}
	for _, l := range f.after {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	err := h.replace(b.Bytes(), f.mode)
	if err == nil || !inPlaceHelps(err) {
		return err
	}
	// Only the file is writable (systemd's ProtectSystem=strict with
	// ReadWritePaths=/etc/hosts.deny: /etc is read-only, the file is a
	// bind mount): rewrite it in place.
	if ierr := h.rewrite(b.Bytes()); ierr != nil {
		return fmt.Errorf("%w; rewriting in place: %v", err, ierr)
	}
	return nil
}

// replace writes data to a temporary file next to the file, fsyncs it and
// renames it over the file: readers see the old or the new file, never a
// part of one.
func (h *HostsDeny) replace(data []byte, mode fs.FileMode) error {
	path, err := linkTarget(h.path)
	if err != nil {
		return fmt.Errorf("hosts-deny: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := h.createTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("hosts-deny: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("hosts-deny: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("hosts-deny: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("hosts-deny: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("hosts-deny: %w", err)
	}
	if err := h.rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("hosts-deny: %w", err)
	}
	return nil
}

// linkTarget follows path through symbolic links to the file they name
// (which need not exist yet), so a hosts.deny that is a link to a file
// elsewhere is written through the link and stays a link.
func linkTarget(path string) (string, error) {
	for range 40 {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		to, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = to
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// inPlaceHelps reports whether err, from creating the temporary file or
// renaming it, says the directory cannot be changed while the file itself
// may still be writable: a read-only directory (EROFS, EACCES, EPERM), a
// file that is a mount point (EBUSY) or on another mount (EXDEV).
func inPlaceHelps(err error) bool {
	for _, e := range []error{syscall.EROFS, syscall.EBUSY, syscall.EXDEV, syscall.EACCES, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// rewrite writes data over the file itself: the whole content from the
// start, then the file cut to its length, then fsync. A reader at that
// moment may see a mix of old and new lines (tcp_wrappers reads the file
// for every connection), the price of a directory we cannot write. The
// caller holds h.mu.
func (h *HostsDeny) rewrite(data []byte) error {
	f, err := os.OpenFile(h.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (h *HostsDeny) change(fn func(f *hostsFile) bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := h.read()
	if err != nil {
		return err
	}
	if !fn(f) {
		return nil
	}
	return h.write(f)
}

// Sync implements Backend.
func (h *HostsDeny) Sync(entries []Entry) error {
	return h.change(func(f *hostsFile) bool {
		f.ours = map[netip.Prefix]bool{}
		for _, e := range entries {
			f.ours[e.Net] = true
		}
		return true
	})
}

// Add implements Backend.
func (h *HostsDeny) Add(entries []Entry) error {
	return h.change(func(f *hostsFile) bool {
		changed := false
		for _, e := range entries {
			if !f.ours[e.Net] {
				f.ours[e.Net] = true
				changed = true
			}
		}
		return changed
	})
}

// Extend implements Backend: hosts.deny has no timeouts.
func (h *HostsDeny) Extend([]Entry) error { return nil }

// Delete implements Backend.
func (h *HostsDeny) Delete(addrs []netip.Prefix) error {
	return h.change(func(f *hostsFile) bool {
		changed := false
		for _, a := range addrs {
			if f.ours[a] {
				delete(f.ours, a)
				changed = true
			}
		}
		return changed
	})
}

// List implements Backend.
func (h *HostsDeny) List() ([]netip.Prefix, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := h.read()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(f.ours))
	for a := range f.ours {
		out = append(out, a)
	}
	return sortAddrs(out), nil
}

// Flush implements Backend.
func (h *HostsDeny) Flush() error {
	return h.change(func(f *hostsFile) bool {
		had := len(f.ours) > 0
		f.ours = map[netip.Prefix]bool{}
		return had
	})
}

// Held implements Backend: hosts.deny lines have no timeout.
func (h *HostsDeny) Held() ([]Entry, error) {
	addrs, err := h.List()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(addrs))
	for i, a := range addrs {
		out[i] = Entry{Net: a}
	}
	return out, nil
}

// Repair implements Backend: it puts back the lines of entries that are
// missing from the file (an admin's editor or a tool that rewrote it).
func (h *HostsDeny) Repair(entries []Entry) ([]string, error) {
	lost := 0
	err := h.change(func(f *hostsFile) bool {
		for _, e := range entries {
			if !f.ours[e.Net] {
				f.ours[e.Net] = true
				lost++
			}
		}
		return lost > 0
	})
	if err != nil || lost == 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("hosts-deny: %s lost %d lines: restored", h.path, lost)}, nil
}
