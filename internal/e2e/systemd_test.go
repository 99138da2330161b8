//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quietwatch/quietwatch/internal/hosttest"
)

// stagingRoot is a machine of its own for an install: the test machine's
// root file system with a private, writable layer on top (overlayfs, the
// layer on a tmpfs), in a private mount namespace held by one process. The
// installer, useradd and the service write into the layer only; nothing of
// it is left when the holder ends. Files are reached from the test through
// /proc/HOLDER/root.
type stagingRoot struct {
	pid   int
	stdin io.WriteCloser
	cmd   *exec.Cmd
}

// holderScript mounts the staging root and holds it: the layer on a tmpfs
// (overlayfs refuses an upper layer inside its lower one on the same file
// system), the API file systems and a fresh /run (a tmpfs, as systemd's), the
// repository and the built binaries where the installer finds them. It ends
// when its stdin closes (the test ended, or died).
const holderScript = `set -e
T=$1 REPO=$2 BIN=$3
mount -t tmpfs -o mode=0755 qwstage "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay qwstage -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
R=$T/root
mount --rbind /proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mkdir -p "$R$REPO" "$R$BIN"
mount --bind "$REPO" "$R$REPO"
mount --bind "$BIN" "$R$BIN"
exec chroot "$R" /bin/sh -c 'echo ready; read -r _'
`

func newStagingRoot(t *testing.T) *stagingRoot {
	t.Helper()
	hosttest.Require(t, "unshare", "nsenter", "chroot", "mount")
	dir := t.TempDir()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", holderScript, "sh", dir, repo, binDir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("staging root: %v", err)
	}
	s := &stagingRoot{pid: cmd.Process.Pid, stdin: stdin, cmd: cmd}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("staging root: %q %v\n%s", line, err, stderr.String())
	}
	return s
}

// path is p inside the staging root, as the test reaches it.
func (s *stagingRoot) path(p string) string { return fmt.Sprintf("/proc/%d/root%s", s.pid, p) }

// command runs argv inside the staging root (as its /), in network
// namespace netns when not "".
func (s *stagingRoot) command(netns string, argv ...string) *exec.Cmd {
	args := []string{"--target", strconv.Itoa(s.pid), "--mount", "--root", "--wd"}
	if netns != "" {
		args = append(args, "--net=/run/netns/"+netns)
	}
	return exec.Command("nsenter", append(append(args, "--"), argv...)...)
}

// systemd emulates what systemd does to start, reload and stop one unit,
// read from the unit file installed in a staging root (PID 1 here is not
// systemd). What it cannot apply is listed in notApplied.
type systemd struct {
	t      *testing.T
	root   *stagingRoot
	netns  string
	name   string
	unit   unitFile
	filter string // the syscall allow list, for the seccomp loader
}

// The settings of a unit this emulation applies; any other setting in
// [Service] fails the test, so a new one is either emulated or listed in
// notApplied with the reason.
var (
	applied = []string{
		"Type", "EnvironmentFile", "ExecStartPre", "ExecStart", "ExecReload", "KillMode", "TimeoutStopSec",
		"Restart", "RestartSec", "RestartPreventExitStatus",
		"StateDirectory", "StateDirectoryMode", "LogsDirectory", "LogsDirectoryMode", "RuntimeDirectory", "RuntimeDirectoryMode",
		"CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem", "ReadWritePaths", "ProtectHome", "PrivateTmp",
		"PrivateDevices", "PrivateMounts", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
		"ProtectControlGroups", "ProtectHostname", "ProtectProc", "ProcSubset", "RestrictAddressFamilies",
		"SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber", "UMask",
		"RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute", "RestrictSUIDSGID", "RestrictRealtime",
	}
	notApplied = map[string]string{
		// Applied in effect only: no @clock in @system-service, and
		// PrivateDevices leaves no /dev/rtc; not on its own.
		"ProtectClock":   "a seccomp deny list of @clock and a device ACL for /dev/rtc",
		"IPAddressDeny":  "a BPF program on the unit's cgroup",
		"IPAddressAllow": "a BPF program on the unit's cgroup",
	}
)

func newSystemd(t *testing.T, root *stagingRoot, netns, name string) *systemd {
	t.Helper()
	data, err := os.ReadFile(root.path("/etc/systemd/system/" + name))
	if err != nil {
		t.Fatalf("the installed unit: %v", err)
	}
	u, err := parseUnit(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for k := range u["Service"] {
		if _, ok := notApplied[k]; !ok && !contains(applied, k) {
			t.Fatalf("%s: %s= is neither emulated nor listed as not applied: teach systemd_test.go", name, k)
		}
	}
	sd := &systemd{t: t, root: root, netns: netns, name: name, unit: u}
	if f := u.words("SystemCallFilter"); len(f) > 0 {
		sd.filter = syscallAllowList(t, u["Service"]["SystemCallFilter"])
	}
	return sd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// syscallAllowList expands SystemCallFilter= lines (an allow list, then
// ~deny lines) with systemd's own group tables.
func syscallAllowList(t *testing.T, lines []string) string {
	t.Helper()
	hosttest.Require(t, "systemd-analyze", "/usr/bin/python3")
	if exec.Command("/usr/bin/python3", "-c", "import seccomp").Run() != nil {
		hosttest.Missing(t, "python3-seccomp not installed")
	}
	allow := map[string]bool{}
	for i, line := range lines {
		deny := strings.HasPrefix(line, "~")
		if i == 0 && deny {
			t.Fatal("SystemCallFilter= starts with a deny list: emulate it")
		}
		for _, w := range strings.Fields(strings.TrimPrefix(line, "~")) {
			for _, sc := range expandSyscalls(t, w, map[string]bool{}) {
				allow[sc] = !deny
			}
		}
	}
	var names []string
	for n, ok := range allow {
		if ok {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

func expandSyscalls(t *testing.T, name string, seen map[string]bool) []string {
	if !strings.HasPrefix(name, "@") {
		return []string{name}
	}
	if seen[name] {
		return nil
	}
	seen[name] = true
	out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", name).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", name, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n")[1:] {
		w := strings.TrimSpace(line)
		if w == "" || strings.HasPrefix(w, "#") {
			continue
		}
		names = append(names, expandSyscalls(t, w, seen)...)
	}
	return names
}

// seccompLoader loads the unit's system call filter and execs the rest of
// its arguments: an allow list (argv[1]) with SystemCallErrorNumber=
// (argv[3]) for the rest, RestrictAddressFamilies= (argv[2], numbers) on
// socket(), and the settings systemd also makes of seccomp argument
// filters (argv[4]): RestrictNamespaces= ("namespaces": no CLONE_NEW* flag
// to clone/unshare, no setns, clone3 ENOSYS so that libc falls back to
// clone), LockPersonality= ("personality"), MemoryDenyWriteExecute= ("wx":
// no mapping both writable and executable, no mprotect to executable),
// RestrictSUIDSGID= ("suid": no set-user/group-ID mode bits by chmod or
// create), RestrictRealtime= ("realtime": no SCHED_FIFO/RR/DEADLINE).
// libseccomp keeps the filter to the native architecture
// (SystemCallArchitectures=native).
const seccompLoader = `import errno, os, sys, seccomp
from seccomp import Arg, EQ, MASKED_EQ, ALLOW, ERRNO
names, fams, err = sys.argv[1].split(","), [int(x) for x in sys.argv[2].split(",") if x], int(sys.argv[3])
extra = set(sys.argv[4].split(","))
cond = {}  # system call -> alternatives (each a list of conditions, all to hold)
if fams:
    cond["socket"] = [[Arg(0, EQ, f)] for f in fams]
if "namespaces" in extra:
    NS = 0x7E020080  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
    cond["unshare"] = cond["clone"] = [[Arg(0, MASKED_EQ, NS, 0)]]
    cond["setns"] = cond["clone3"] = []
if "personality" in extra:
    cond["personality"] = [[Arg(0, EQ, 0)], [Arg(0, EQ, 0xFFFFFFFF)]]
if "wx" in extra:
    W, X = 2, 4
    cond["mmap"] = [[Arg(2, MASKED_EQ, W | X, v)] for v in (0, W, X)]
    cond["mprotect"] = cond["pkey_mprotect"] = [[Arg(2, MASKED_EQ, X, 0)]]
    cond["shmat"] = [[Arg(2, MASKED_EQ, 0o100000, 0)]]
if "suid" in extra:
    S, CREAT = 0o6000, 0o100
    cond["chmod"] = cond["fchmod"] = cond["creat"] = [[Arg(1, MASKED_EQ, S, 0)]]
    cond["fchmodat"] = [[Arg(2, MASKED_EQ, S, 0)]]
    cond["open"] = [[Arg(1, MASKED_EQ, CREAT, 0)], [Arg(2, MASKED_EQ, S, 0)]]
    cond["openat"] = [[Arg(2, MASKED_EQ, CREAT, 0)], [Arg(3, MASKED_EQ, S, 0)]]
if "realtime" in extra:
    cond["sched_setscheduler"] = [[Arg(1, EQ, p)] for p in (0, 3, 5)]
    cond["sched_setattr"] = []
f = seccomp.SyscallFilter(defaction=ERRNO(err))
for n in names:
    try:
        if n not in cond:
            f.add_rule(ALLOW, n)
        for c in cond.get(n, []):
            f.add_rule(ALLOW, n, *c)
    except Exception:
        pass  # not a system call of this architecture
if "namespaces" in extra:
    f.add_rule(ERRNO(errno.ENOSYS), "clone3")
f.load()
os.execv(sys.argv[5], sys.argv[5:])
`

// seccompSettings are the unit's settings the loader makes argument
// filters of, with the name the loader knows each by.
var seccompSettings = map[string]string{"RestrictNamespaces": "namespaces", "LockPersonality": "personality",
	"MemoryDenyWriteExecute": "wx", "RestrictSUIDSGID": "suid", "RestrictRealtime": "realtime"}

var addressFamilies = map[string]int{"AF_UNIX": syscall.AF_UNIX, "AF_INET": syscall.AF_INET, "AF_INET6": syscall.AF_INET6, "AF_NETLINK": syscall.AF_NETLINK, "AF_PACKET": syscall.AF_PACKET}

// dirs returns the unit's State/Logs/Runtime directories with their modes.
func (sd *systemd) dirs() map[string]os.FileMode {
	d := map[string]os.FileMode{}
	for key, base := range map[string]string{"StateDirectory": "/var/lib", "LogsDirectory": "/var/log", "RuntimeDirectory": "/run"} {
		mode, err := strconv.ParseUint(sd.unit.get(key+"Mode", "0755"), 8, 32)
		if err != nil {
			sd.t.Fatalf("%sMode=: %v", key, err)
		}
		for _, name := range sd.unit.words(key) {
			d[filepath.Join(base, name)] = os.FileMode(mode)
		}
	}
	return d
}

// makeDirs does what systemd does before every start: each directory
// exists, has the unit's mode and belongs to the unit's user (root here,
// no User=); a tree whose top is someone else's is chowned back whole.
func (sd *systemd) makeDirs() {
	t := sd.t
	if sd.unit.get("User", "") != "" {
		t.Fatal("User= is set: emulate it")
	}
	for dir, mode := range sd.dirs() {
		p := sd.root.path(dir)
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 {
			err := filepath.Walk(p, func(path string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(path, 0, 0)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// environment is what systemd gives the unit's processes.
func (sd *systemd) environment() map[string]string {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
	for key, v := range map[string]string{"StateDirectory": "STATE_DIRECTORY", "LogsDirectory": "LOGS_DIRECTORY", "RuntimeDirectory": "RUNTIME_DIRECTORY"} {
		for dir := range sd.dirs() {
			base := map[string]string{"STATE_DIRECTORY": "/var/lib/", "LOGS_DIRECTORY": "/var/log/", "RUNTIME_DIRECTORY": "/run/"}[v]
			if strings.HasPrefix(dir, base) && len(sd.unit.words(key)) > 0 {
				env[v] = dir
			}
		}
	}
	for _, f := range sd.unit["Service"]["EnvironmentFile"] {
		optional := strings.HasPrefix(f, "-")
		data, err := os.ReadFile(sd.root.path(strings.TrimPrefix(f, "-")))
		if err != nil {
			if optional {
				continue
			}
			sd.t.Fatalf("EnvironmentFile=%s: %v", f, err)
		}
		vars, err := parseEnvFile(data)
		if err != nil {
			sd.t.Fatalf("EnvironmentFile=%s: %v", f, err)
		}
		for k, v := range vars {
			env[k] = v
		}
	}
	return env
}

// sandbox is the shell script that sets up the unit's mount namespace
// (ProtectSystem= and friends) and then execs its arguments with the unit's
// credentials, capabilities, system call filter and umask.
func (sd *systemd) sandbox() []string {
	t, u := sd.t, sd.unit
	var sh strings.Builder
	sh.WriteString("set -e\n")
	yes := func(k string) bool { return contains([]string{"yes", "true", "1", "on"}, u.get(k, "no")) }
	// A fresh /proc first: ProtectProc= and ProcSubset= are options of a
	// proc instance; the binds below are made on it.
	if pp, sub := u.get("ProtectProc", "default"), u.get("ProcSubset", "all"); pp != "default" || sub != "all" {
		opts := []string{}
		if pp != "default" {
			opts = append(opts, "hidepid="+pp)
		}
		if sub == "pid" {
			opts = append(opts, "subset=pid")
		}
		fmt.Fprintf(&sh, "mount -t proc -o %s proc /proc\n", strings.Join(opts, ","))
	}
	if yes("PrivateTmp") {
		sh.WriteString("mount -t tmpfs -o mode=1777 tmpfs /tmp\nmount -t tmpfs -o mode=1777 tmpfs /var/tmp\n")
	}
	if yes("PrivateDevices") {
		// A /dev of pseudo devices only.
		sh.WriteString(`mkdir /tmp/.dev && mount -t tmpfs -o mode=0755,nosuid tmpfs /tmp/.dev
for n in null zero full random urandom tty; do cp -a /dev/$n /tmp/.dev/; done
mkdir /tmp/.dev/shm /tmp/.dev/pts && chmod 1777 /tmp/.dev/shm
ln -s /proc/self/fd /tmp/.dev/fd; ln -s /proc/self/fd/0 /tmp/.dev/stdin; ln -s /proc/self/fd/1 /tmp/.dev/stdout; ln -s /proc/self/fd/2 /tmp/.dev/stderr
mount --move /tmp/.dev /dev
`)
	}
	// Writable: ReadWritePaths= ("-": may be missing) and the unit's
	// directories, each a bind mount of its own before / turns read-only.
	rw := []string{}
	for d := range sd.dirs() {
		rw = append(rw, d)
	}
	rw = append(rw, u.words("ReadWritePaths")...)
	var rwPaths []string
	for _, p := range rw {
		rwPaths = append(rwPaths, strings.TrimPrefix(p, "-"))
		if strings.HasPrefix(p, "-") {
			p = p[1:]
			fmt.Fprintf(&sh, "if [ -e %[1]s ]; then mount --bind %[1]s %[1]s; fi\n", p)
			continue
		}
		fmt.Fprintf(&sh, "mount --bind %[1]s %[1]s\n", p)
	}
	switch ps := u.get("ProtectSystem", "no"); ps {
	case "strict":
		// Every mount but the API file systems, the private ones above and
		// the writable binds: read-only.
		fmt.Fprintf(&sh, `awk '{print $5}' /proc/self/mountinfo | while read -r m; do
  case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/tmp|/tmp/*|/var/tmp|/var/tmp/*) continue ;; esac
  for s in %s; do if [ "$m" = "$s" ]; then continue 2; fi; done
  mount -o remount,bind,ro "$m"
done
`, strings.Join(rwPaths, " "))
	case "no":
	default:
		t.Fatalf("ProtectSystem=%s: emulate it", ps)
	}
	if yes("ProtectHome") {
		sh.WriteString("for d in /home /root /run/user; do if [ -d $d ]; then mount -t tmpfs -o ro,mode=0755 tmpfs $d; fi; done\n")
	}
	if yes("ProtectKernelTunables") {
		sh.WriteString(`if [ -d /proc/sys ]; then mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys; fi
`)
	}
	if yes("ProtectKernelTunables") || yes("ProtectControlGroups") {
		// /sys and everything under it (cgroups too) read-only.
		sh.WriteString(`awk '$5 ~ "^/sys(/|$)" {print $5}' /proc/self/mountinfo | while read -r m; do mount -o remount,bind,ro "$m"; done
`)
	}
	if yes("ProtectKernelModules") {
		sh.WriteString("if [ -d /usr/lib/modules ]; then mount -t tmpfs -o ro,mode=000 tmpfs /usr/lib/modules; fi\n")
	}
	if yes("ProtectKernelLogs") {
		sh.WriteString(`: >/tmp/.gone && chmod 000 /tmp/.gone
for f in /proc/kmsg /dev/kmsg; do if [ -e $f ]; then mount --bind /tmp/.gone $f; fi; done
`)
	}
	// Credentials and capabilities (no User=: root, limited by the bounding set).
	args := []string{"setpriv"}
	if caps := u.words("CapabilityBoundingSet"); len(caps) > 0 {
		set := "-all"
		for _, c := range caps {
			if strings.HasPrefix(c, "~") {
				t.Fatal("CapabilityBoundingSet=~: emulate it")
			}
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		args = append(args, "--bounding-set="+set, "--inh-caps=-all")
	}
	if yes("NoNewPrivileges") {
		args = append(args, "--no-new-privs")
	}
	args = append(args, "--")
	if sd.filter != "" {
		var fams []string
		for _, f := range u.words("RestrictAddressFamilies") {
			n, ok := addressFamilies[f]
			if !ok {
				t.Fatalf("RestrictAddressFamilies=%s: add its number", f)
			}
			fams = append(fams, strconv.Itoa(n))
		}
		errno := map[string]int{"": int(syscall.EPERM), "EPERM": int(syscall.EPERM), "EACCES": int(syscall.EACCES)}
		e, ok := errno[u.get("SystemCallErrorNumber", "")]
		if !ok {
			t.Fatalf("SystemCallErrorNumber=%s: emulate it", u.get("SystemCallErrorNumber", ""))
		}
		if u.get("SystemCallArchitectures", "native") != "native" {
			t.Fatal("SystemCallArchitectures= other than native: emulate it")
		}
		var extra []string
		for k, name := range seccompSettings {
			if v := u.get(k, "no"); yes(k) {
				extra = append(extra, name)
			} else if v != "no" && v != "false" {
				t.Fatalf("%s=%s: emulate it", k, v)
			}
		}
		args = append(args, "/usr/bin/python3", "-c", seccompLoader, sd.filter, strings.Join(fams, ","), strconv.Itoa(e), strings.Join(extra, ","))
	} else {
		for k := range seccompSettings {
			if yes(k) {
				t.Fatalf("%s= without SystemCallFilter=: emulate it", k)
			}
		}
	}
	umask := u.get("UMask", "0022")
	args = append(args, "/bin/sh", "-c", "umask "+umask+`; exec "$@"`, "sh")
	sh.WriteString(`exec "$@"` + "\n")
	launcher := []string{"unshare", "--mount", "--propagation", "private"}
	if yes("ProtectHostname") {
		launcher = append(launcher, "--uts")
	}
	launcher = append(launcher, "--", "/bin/sh", "-c", sh.String(), "sandbox")
	return append(launcher, args...)
}

// command is argv run as the unit runs its Exec*= commands.
func (sd *systemd) command(env map[string]string, argv ...string) *exec.Cmd {
	cmd := sd.root.command(sd.netns, append(sd.sandbox(), argv...)...)
	cmd.Env = nil
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// service is one run of the unit's main process.
type service struct {
	sd     *systemd
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	mntNS  string // the unit's mount namespace: its processes, as a cgroup would list them
}

// start does what systemctl start does: the directories, ExecStartPre=
// (each must succeed), then ExecStart= in the background.
func (sd *systemd) start() *service {
	t := sd.t
	sd.makeDirs()
	env := sd.environment()
	for _, line := range sd.unit["Service"]["ExecStartPre"] {
		argv, ignore, err := execLine(line, env)
		if err != nil {
			t.Fatalf("ExecStartPre=%s: %v", line, err)
		}
		out, err := sd.command(env, argv...).CombinedOutput()
		if err != nil && !ignore {
			t.Fatalf("ExecStartPre=%s: %v\n%s", line, err, out)
		}
	}
	argv, _, err := execLine(sd.unit.get("ExecStart", ""), env)
	if err != nil {
		t.Fatalf("ExecStart=: %v", err)
	}
	s := &service{sd: sd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = sd.command(env, argv...)
	// The journal: a pipe of our own, so that Wait returns when the main
	// process ends, not when the last process holding the pipe does.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() { _, _ = io.Copy(s.stderr, r); r.Close() }()
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.kill() })
	// Once the launcher has exec'd the main program (no launcher's name in
	// argv[0] any more), its mount namespace is the unit's: never ours nor
	// the staging root's, or stop would kill what is not the unit's.
	launchers := []string{"nsenter", "unshare", "/bin/sh", "setpriv", "/usr/bin/python3", "sh"}
	own, _ := os.Readlink("/proc/self/ns/mnt")
	staging, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", sd.root.pid))
	if !waitFor(10*time.Second, func() bool {
		pid := s.cmd.Process.Pid
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		if !bytes.Contains(cmdline, []byte(argv[0])) || contains(launchers, args[0]) {
			return false
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || ns == own || ns == staging {
			return false
		}
		s.mntNS = ns
		return true
	}) {
		t.Fatalf("ExecStart= did not start\n%s", s.stderr.String())
	}
	return s
}

func (s *service) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// processes lists the pids in the unit's mount namespace.
func (s *service) processes() []int {
	var pids []int
	if own, _ := os.Readlink("/proc/self/ns/mnt"); s.mntNS == "" || s.mntNS == own {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && ns == s.mntNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stage returns the pid of the unit's process whose argv[0] is name.
func (s *service) stage(name string) int {
	for _, pid := range s.processes() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Split(string(cmdline), "\x00")[0] == name {
			return pid
		}
	}
	return 0
}

// reload runs ExecReload= as systemctl reload does.
func (s *service) reload() {
	env := s.sd.environment()
	env["MAINPID"] = strconv.Itoa(s.cmd.Process.Pid)
	argv, _, err := execLine(s.sd.unit.get("ExecReload", ""), env)
	if err != nil {
		s.sd.t.Fatal(err)
	}
	if out, err := s.sd.command(env, argv...).CombinedOutput(); err != nil {
		s.sd.t.Fatalf("ExecReload=: %v\n%s", err, out)
	}
}

// stop does what systemctl stop does with KillMode=mixed: SIGTERM to the
// main process, SIGKILL to everything left of the unit after it ended or
// after TimeoutStopSec=; then the runtime directory goes. It returns how
// long the main process took and what it left running.
func (s *service) stop() (took time.Duration, left []int) {
	timeout, err := time.ParseDuration(s.sd.unit.get("TimeoutStopSec", "90") + "s")
	if err != nil {
		s.sd.t.Fatal(err)
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
	}
	took = time.Since(start)
	left = s.processes()
	s.kill()
	return took, left
}

func (s *service) kill() {
	if s.mntNS == "" {
		return
	}
	for _, pid := range s.processes() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	waitFor(5*time.Second, func() bool { return len(s.processes()) == 0 })
	for dir := range s.sd.dirs() {
		if strings.HasPrefix(dir, "/run/") {
			_ = os.RemoveAll(s.sd.root.path(dir))
		}
	}
}

// forwardSMTP listens on 127.0.0.1:25 inside network namespace ns and
// passes each connection to the test machine's Postfix on 127.0.0.1:25,
// so a service in ns mails as it would on a server.
func forwardSMTP(t *testing.T, ns string) {
	t.Helper()
	ln, err := listenIn(ns, "127.0.0.1:25")
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", "127.0.0.1:25")
				if err != nil {
					return
				}
				defer up.Close()
				var wg sync.WaitGroup
				wg.Add(1)
				go func() { defer wg.Done(); _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
				_ = c.(*net.TCPConn).CloseWrite()
				wg.Wait()
			}()
		}
	}()
}

// listenIn opens a TCP listener inside network namespace ns: the socket
// is made on a thread switched into ns and back.
func listenIn(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return // the thread ends with the goroutine: it stays locked
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err}
			return
		}
		ln, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, err} // the thread stays in ns: locked, it dies with us
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, lerr}
	}()
	r := <-ch
	return r.ln, r.err
}

// sigPending reports whether signal sig is pending for process pid (it is
// stopped, so a signal sent stays pending where /proc shows it).
func sigPending(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k != "ShdPnd" && k != "SigPnd" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err == nil && mask&(1<<(uint(sig)-1)) != 0 {
			return true
		}
	}
	return false
}

// TestSeccompLoader checks that the emulation's filter is not a no-op:
// what the unit's settings forbid fails under it, the rest runs.
func TestSeccompLoader(t *testing.T) {
	filter := syscallAllowList(t, []string{"@system-service", "~@resources"})
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	fams := fmt.Sprintf("%d,%d,%d,%d", syscall.AF_UNIX, syscall.AF_INET, syscall.AF_INET6, syscall.AF_NETLINK)
	run := func(argv ...string) error {
		args := append([]string{"-c", seccompLoader, filter, fams, strconv.Itoa(int(syscall.EPERM)),
			"namespaces,personality,wx,suid,realtime"}, argv...)
		return exec.Command("/usr/bin/python3", args...).Run()
	}
	py := func(code string) []string { return []string{"/usr/bin/python3", "-c", code} }
	if err := run("/bin/sh", "-c", "chmod 0700 "+file+" && echo ok >/dev/null"); err != nil {
		t.Fatalf("a plain command fails under the filter: %v", err)
	}
	for name, argv := range map[string][]string{
		"RestrictNamespaces":      {"unshare", "--uts", "/bin/true"},
		"LockPersonality":         {"setarch", "-R", "/bin/true"},
		"RestrictSUIDSGID":        {"chmod", "4755", file},
		"MemoryDenyWriteExecute":  py("import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)"),
		"RestrictAddressFamilies": py("import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)"),
		"RestrictRealtime":        py("import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"),
	} {
		if err := exec.Command(argv[0], argv[1:]...).Run(); err != nil {
			t.Errorf("%s: %q fails even without the filter: %v", name, argv, err)
		}
		if err := run(argv...); err == nil {
			t.Errorf("%s: %q ran under the filter", name, argv)
		}
	}
}
