package block

// Live ban control. A running block serves --socket, a Unix socket only
// root may use (0600, and each peer's uid checked with SO_PEERCRED); the
// subcommands list, ban and unban talk to it, and work on the state file
// themselves when no block answers there.
//
// Protocol: one connection per request. The client writes one JSON line,
//
//	{"op":"list"}
//	{"op":"ban","ip":"192.0.2.241","timeout":"1h"}   (timeout: a Go duration; omitted: block's --timeout)
//	{"op":"unban","ip":"192.0.2.241"}
//
// with, optionally, "state": the state file the caller means (a block
// keeping another one does nothing and answers "other_state":true). block
// answers with one JSON line and closes the connection:
//
//	{"ok":true,"decisions":[<decision>...],"bans":[<ban>...]}
//	{"ok":false,"error":"ban 127.0.0.1: refused: loopback (never banned)","exit":1}
//
// decisions are the decision records the change made (also written on the
// running block's stdout and to its --ar-log), bans the live bans (list):
// the objects block list --json prints. exit is the exit code the client
// ends with. docs/block.md describes the same.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/quietwatch/quietwatch/pkg/ban"
	"github.com/quietwatch/quietwatch/pkg/command"
	"github.com/quietwatch/quietwatch/pkg/exitcode"
	"github.com/quietwatch/quietwatch/pkg/firewall"
	"github.com/quietwatch/quietwatch/pkg/record"
)

// ctlRequest is what a subcommand asks a running block.
type ctlRequest struct {
	Op      string `json:"op"` // list, ban or unban
	IP      string `json:"ip,omitempty"`
	Timeout string `json:"timeout,omitempty"`
	// State, when set, is the state file the caller means (its --state,
	// absolute): a block keeping another one does nothing and says so.
	State string `json:"state,omitempty"`
}

// ctlResponse is a running block's answer.
type ctlResponse struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Exit  int    `json:"exit,omitempty"`
	// OtherState says the block keeps another state file than the
	// request's State: nothing was done.
	OtherState bool              `json:"other_state,omitempty"`
	Decisions  []record.Decision `json:"decisions,omitempty"`
	Bans       []listBan         `json:"bans,omitempty"`
}

// listBan is one live ban as block list --json prints it.
type listBan struct {
	IP    string `json:"ip"`
	Until string `json:"until"`
	// RemainingS is the time left in whole seconds, rounded up: 0 only
	// for a ban that has ended and is not lifted yet.
	RemainingS int64 `json:"remaining_s"`
	TimeoutS   int64 `json:"timeout_s"`
	Offense    int   `json:"offense"`
	// Reason is "manual" for a ban placed with block ban.
	Reason   string   `json:"reason,omitempty"`
	RuleID   string   `json:"rule_id,omitempty"`
	AlertID  string   `json:"alert_id,omitempty"`
	Backends []string `json:"backends"`
	Pending  []string `json:"pending,omitempty"`
}

func listBans(bans []ban.Ban, now time.Time) []listBan {
	out := make([]listBan, 0, len(bans))
	for _, b := range bans {
		left := max(0, b.Until.Sub(now))
		backends := b.Backends
		if backends == nil {
			backends = []string{}
		}
		out = append(out, listBan{IP: firewall.PrefixText(b.Net), Until: ban.Stamp(b.Until),
			RemainingS: int64(math.Ceil(left.Seconds())), TimeoutS: int64(b.Timeout / time.Second),
			Offense: b.Offense, Reason: b.Reason, RuleID: b.RuleID, AlertID: b.AlertID,
			Backends: backends, Pending: b.Pending})
	}
	return out
}

// maxRequest bounds a request line.
const maxRequest = 64 << 10

// ioTimeout bounds reading a request and writing an answer; askTimeout is
// how long a client waits for the answer (the running block may be busy
// with a batch of alerts).
const (
	ioTimeout  = 10 * time.Second
	askTimeout = 30 * time.Second
)

// call is a request on its way to the loop and the answer's way back.
type call struct {
	req   ctlRequest
	reply chan ctlResponse
}

// server is the running block's end of --socket.
type server struct {
	ln    *net.UnixListener
	path  string
	state string // the state file, absolute; "" for none
	ino   uint64
	calls chan *call
	done  chan struct{}
	wg    sync.WaitGroup
	diag  command.Diag
	uid   int
	mu    sync.Mutex
	conns map[*net.UnixConn]bool // open connections, closed by close
}

// socketPath returns the socket the running block serves: --socket, but
// by default none for an empty --state (a replay is not the service, and
// must not take the service's socket) nor for a block not run by root
// (the default's folder is root's; only root may use the socket anyway).
func socketPath(path, state string, given bool) string {
	if !given && (state == "" || os.Geteuid() != 0) {
		return ""
	}
	return path
}

// serve listens on path ("" : no socket, and a nil *server) and answers
// connections until close. A stale socket file (a crashed block's) is
// replaced; one a block still answers on is not (exit 75), nor a file that
// is not a socket (exit 78).
func serve(path, state string, d command.Diag) (*server, error) {
	if path == "" {
		return nil, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, exitcode.New(exitcode.Config, fmt.Errorf("--socket: %w", err))
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, exitcode.Errorf(exitcode.Config, "--socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, exitcode.Errorf(exitcode.TempFail, "--socket %s: another block process answers there (give each block a --socket of its own)", path)
		}
	}
	// Bound under a temporary name, made 0600, then renamed over path:
	// the socket is never reachable with wider permissions, and a stale
	// one is replaced in one step.
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d", filepath.Base(path), os.Getpid()))
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	s := &server{ln: ln, path: path, state: abs(state), calls: make(chan *call), done: make(chan struct{}), diag: d,
		uid: os.Geteuid(), conns: map[*net.UnixConn]bool{}}
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.ino = st.Ino
		}
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// requests returns the channel of calls for the loop (nil: none ever).
func (s *server) requests() <-chan *call {
	if s == nil {
		return nil
	}
	return s.calls
}

// close stops answering and removes the socket file if it is still ours.
func (s *server) close() {
	if s == nil {
		return
	}
	close(s.done)
	s.ln.Close()
	// A client that connected and sends nothing must not hold block's
	// exit for the read timeout.
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
	if fi, err := os.Stat(s.path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == s.ino {
			os.Remove(s.path)
		}
	}
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			s.diag.Printf("--socket: %v", err)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		s.mu.Lock()
		if s.conns == nil { // closing
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.conn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// conn answers one connection: one request, one answer.
func (s *server) conn(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	uid, pid, err := peer(c)
	if err != nil {
		s.diag.Printf("--socket: peer credentials: %v", err)
		return
	}
	// The request is read (bounded) before a refusal, so the peer gets
	// the answer rather than a broken pipe.
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadBytes('\n')
	if uid != 0 && uid != s.uid {
		s.diag.Printf("--socket: refused pid %d: uid %d is not root", pid, uid)
		s.answer(c, ctlResponse{Error: fmt.Sprintf("permission denied: uid %d is not root", uid), Exit: exitcode.Failure})
		return
	}
	if err != nil {
		if !s.closing() && (err != io.EOF || len(line) > 0) {
			s.answer(c, ctlResponse{Error: "request: " + err.Error(), Exit: exitcode.Usage})
		}
		return
	}
	var req ctlRequest
	if err := record.Unmarshal(line, &req); err != nil {
		s.answer(c, ctlResponse{Error: "request: not a JSON object", Exit: exitcode.Usage})
		return
	}
	if req.State != "" && !sameFile(req.State, s.state) {
		s.answer(c, ctlResponse{Error: fmt.Sprintf("the block on this socket keeps its state in %q", s.state), Exit: exitcode.TempFail, OtherState: true})
		return
	}
	cl := &call{req: req, reply: make(chan ctlResponse, 1)}
	stopping := ctlResponse{Error: "block is stopping", Exit: exitcode.TempFail}
	c.SetDeadline(time.Time{}) // the loop may be busy with a batch
	select {
	case s.calls <- cl:
	case <-s.done:
		s.answer(c, stopping)
		return
	}
	select {
	case r := <-cl.reply:
		s.answer(c, r)
	case <-s.done:
		s.answer(c, stopping)
	}
}

// closing reports whether close was called.
func (s *server) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// sameFile reports whether a and b name one existing file.
func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

func (s *server) answer(c net.Conn, r ctlResponse) {
	b, err := record.Marshal(&r)
	if err != nil {
		b, _ = record.Marshal(&ctlResponse{Error: err.Error(), Exit: exitcode.Failure})
	}
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(append(b, '\n')); err != nil && !s.closing() {
		s.diag.Printf("--socket: %v", err)
	}
}

// handle carries out a call in the loop, with the Manager the alerts use:
// its decisions go to stdout and the ar-log like the pipeline's, and back
// to the caller. timeout is block's --timeout. A write error on stdout is
// returned (it ends block, as it would for a decision of the pipeline).
func handle(cl *call, m *ban.Manager, out *output, timeout time.Duration, now time.Time, d command.Diag) error {
	r, ds := do(cl.req, m, timeout, now, d)
	r.Decisions = ds
	werr := out.write(ds) // buffered; the ar-log line is written
	// The caller is answered before stdout is flushed: a stalled reader
	// of block's stdout must not hold an admin's command.
	cl.reply <- r
	if werr == nil {
		werr = out.flush()
	}
	return werr
}

// do carries out a request on m and returns the answer and the decisions
// the change made.
func do(req ctlRequest, m *ban.Manager, timeout time.Duration, now time.Time, d command.Diag) (ctlResponse, []record.Decision) {
	fail := func(code int, format string, args ...any) ctlResponse {
		return ctlResponse{Error: fmt.Sprintf(format, args...), Exit: code}
	}
	var addr netip.Addr
	var network netip.Prefix
	switch req.Op {
	case "ban":
		var ok bool
		if addr, ok = ban.ParseAddr(req.IP); !ok {
			return fail(exitcode.Usage, "%s: %q is not an IP address", req.Op, req.IP), nil
		}
	case "unban":
		var ok bool
		if network, ok = firewall.ParsePrefix(req.IP); !ok {
			return fail(exitcode.Usage, "%s: %q is not an IP address or network", req.Op, req.IP), nil
		}
	}
	switch req.Op {
	case "list":
		return ctlResponse{OK: true, Bans: listBans(m.Bans(), now)}, nil
	case "ban":
		t := timeout
		if req.Timeout != "" {
			d, err := time.ParseDuration(req.Timeout)
			if err != nil || d <= 0 {
				return fail(exitcode.Config, "ban: --timeout %q: want a positive duration", req.Timeout), nil
			}
			t = d
		}
		ds, err := m.Manual(now, addr, t)
		return result("ban", addr.String(), err, d), ds
	case "unban":
		ds, was, err := m.Unban(now, network)
		if err == nil && !was {
			return fail(exitcode.Failure, "unban %s: not banned", firewall.PrefixText(network)), ds
		}
		return result("unban", firewall.PrefixText(network), err, d), ds
	}
	return fail(exitcode.Usage, "request: unknown op %q (want list, ban or unban)", req.Op), nil
}

// result turns a Manager's error into the answer: a refusal (exit 1), a
// backend or state error (reported on d too: the running block's stderr;
// the decisions stand), or success.
func result(op string, addr string, err error, d command.Diag) ctlResponse {
	var re *ban.RefusedError
	switch {
	case err == nil:
		return ctlResponse{OK: true}
	case errors.As(err, &re):
		return ctlResponse{Error: fmt.Sprintf("%s %s: refused: %s", op, addr, refusalText(re.Reason)), Exit: exitcode.Failure}
	default:
		printErr(d, err)
		return ctlResponse{Error: fmt.Sprintf("%s %s: %v", op, addr, err), Exit: exitcode.Failure}
	}
}

// refusalText explains a refusal reason to an admin.
func refusalText(reason string) string {
	switch reason {
	case "allowlisted":
		return "allowlisted (--allow, --allow-file)"
	case "own-address":
		return "own-address (an address of this host)"
	}
	return reason + " (never banned)"
}

// errNoBlock means no block answers on the socket: the subcommand works on
// the state file itself.
var errNoBlock = errors.New("no block answers")

// ask sends req to the block serving path and returns its answer, or
// errNoBlock when there is no socket file, nobody listens on it (a stale
// file from a crash), or the block there keeps another state file than
// req.State.
func ask(path string, req ctlRequest) (ctlResponse, error) {
	if path == "" {
		return ctlResponse{}, errNoBlock
	}
	c, err := net.DialTimeout("unix", path, ioTimeout)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTSOCK) {
		return ctlResponse{}, errNoBlock
	}
	if err != nil {
		return ctlResponse{}, fmt.Errorf("--socket: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(askTimeout))
	b, err := record.Marshal(&req)
	if err != nil {
		return ctlResponse{}, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return ctlResponse{}, fmt.Errorf("--socket %s: %w", path, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		if err == io.EOF {
			return ctlResponse{}, exitcode.Errorf(exitcode.TempFail, "--socket %s: block closed the connection without an answer (stopping?)", path)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return ctlResponse{}, exitcode.Errorf(exitcode.TempFail, "--socket %s: no answer within %v", path, askTimeout)
		}
		return ctlResponse{}, fmt.Errorf("--socket %s: %w", path, err)
	}
	var r ctlResponse
	if err := record.Unmarshal(line, &r); err != nil {
		return ctlResponse{}, fmt.Errorf("--socket %s: unreadable answer: %s", path, firstLine(err.Error()))
	}
	if r.OtherState {
		return r, errNoBlock
	}
	return r, nil
}
