package firewall

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHostsDeny(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.deny")
	orig := "# /etc/hosts.deny: the admin's own lines\nsshd: 10.0.0.1\n"
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	h := NewHostsDeny(path)
	a4, a6 := netip.MustParseAddr("192.0.2.241"), netip.MustParseAddr("2001:db8::241")
	if err := h.Add([]Entry{{Net: Single(a6), TTL: time.Minute}, {Net: Single(a4)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Add([]Entry{{Net: Single(a4)}}); err != nil { // idempotent
		t.Fatal(err)
	}
	want := orig + hostsDenyBegin + "\nALL: 192.0.2.241\nALL: [2001:db8::241]\n" + hostsDenyEnd + "\n"
	check := func(want string) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("file:\n%s\nwant:\n%s", got, want)
		}
	}
	check(want)
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	// The admin appends a line after our block; it stays where it is.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("ALL: 10.9.9.9\n")
	f.Close()

	l, err := h.List()
	if err != nil || !slices.Equal(l, nets(a4, a6)) {
		t.Fatalf("list %v %v", l, err)
	}
	if err := h.Delete(nets(a4, netip.MustParseAddr("192.0.2.7"))); err != nil {
		t.Fatal(err)
	}
	check(orig + hostsDenyBegin + "\nALL: [2001:db8::241]\n" + hostsDenyEnd + "\nALL: 10.9.9.9\n")
	if err := h.Sync([]Entry{{Net: Single(a4)}}); err != nil {
		t.Fatal(err)
	}
	check(orig + hostsDenyBegin + "\nALL: 192.0.2.241\n" + hostsDenyEnd + "\nALL: 10.9.9.9\n")
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	check(orig + "ALL: 10.9.9.9\n")
	// No temporary files left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d files", len(ents))
	}
}

func TestHostsDenyMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.deny")
	h := NewHostsDeny(path)
	if l, err := h.List(); err != nil || len(l) != 0 {
		t.Fatalf("list of a missing file: %v %v", l, err)
	}
	if err := h.Delete(nets(netip.MustParseAddr("192.0.2.1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("delete created the file")
	}
	if err := h.Add([]Entry{{Net: Single(netip.MustParseAddr("192.0.2.1"))}}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("created file: %v %v", st, err)
	}
}

func TestCheckChain(t *testing.T) {
	for _, ok := range []string{"QUIETWATCH", "qw-test_1", "Q"} {
		if err := CheckChain(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "INPUT", "drop", "1abc", "a b", "a;b", "ABCDEFGHIJKLMNOPQRSTUVWXYZABC", "-j"} {
		if CheckChain(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if SetName("QUIETWATCH", true) != "quietwatch-v6" {
		t.Error(SetName("QUIETWATCH", true))
	}
}

func TestFake(t *testing.T) {
	f := NewFake("fake")
	a := netip.MustParseAddr("192.0.2.1")
	f.Add([]Entry{{Net: Single(a), TTL: time.Second}})
	f.Extend([]Entry{{Net: Single(a), TTL: 2 * time.Second}})
	if !f.Has(a) || f.TTL(a) != 2*time.Second {
		t.Fatal("fake lost the ban")
	}
	f.Delete(nets(a))
	if c := f.Calls(); !slices.Equal(c, []string{"add 192.0.2.1", "extend 192.0.2.1", "delete 192.0.2.1"}) {
		t.Fatalf("calls %q", c)
	}
}

// Without iptables on PATH the netfilter backends are unavailable (exit 69).
func TestUnavailable(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, name := range []string{"iptables", "ipset"} {
		_, err := New(name, Config{Chain: "QUIETWATCH", Backends: []string{name}})
		var ue *UnavailableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "iptables not found") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New("nft", Config{}); err == nil {
		t.Error("unknown backend accepted")
	}
}

// FuzzHostsDeny: whatever the file holds, adding and flushing a ban keeps
// every line that is not inside a complete block of ours.
func FuzzHostsDeny(f *testing.F) {
	f.Add("sshd: 10.0.0.1\n")
	f.Add(hostsDenyBegin + "\nALL: 192.0.2.1\n" + hostsDenyEnd + "\nALL: 10.0.0.2\n")
	f.Add(hostsDenyBegin + "\nALL: 192.0.2.1\nsshd: 10.0.0.3\n")
	f.Add("no newline at the end")
	f.Fuzz(func(t *testing.T, content string) {
		if strings.Contains(content, hostsDenyBegin) || strings.Contains(content, hostsDenyEnd) || strings.Contains(content, "\r") {
			return
		}
		path := filepath.Join(t.TempDir(), "hosts.deny")
		os.WriteFile(path, []byte(content), 0o644)
		h := NewHostsDeny(path)
		if err := h.Add([]Entry{{Net: Single(netip.MustParseAddr("2001:db8::1"))}}); err != nil {
			t.Fatal(err)
		}
		if l, err := h.List(); err != nil || len(l) != 1 {
			t.Fatalf("list %v %v", l, err)
		}
		if err := h.Flush(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		want := content
		if want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if string(got) != want {
			t.Fatalf("file after add+flush:\n%q\nwant:\n%q", got, want)
		}
	})
}

// nets returns addrs as single-address networks.
func nets(addrs ...netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, len(addrs))
	for i, a := range addrs {
		out[i] = Single(a)
	}
	return out
}

// Networks are written in tcp_wrappers' forms and read back; a line in
// any other form is not ours.
func TestHostsDenyPrefix(t *testing.T) {
	for p, line := range map[string]string{
		"2001:db8::/64":    "ALL: [2001:db8::]/64",
		"2001:db8::1/128":  "ALL: [2001:db8::1]",
		"198.51.100.0/24":  "ALL: 198.51.100.0/255.255.255.0",
		"198.51.100.7/32":  "ALL: 198.51.100.7",
		"2001:db8:1::/48":  "ALL: [2001:db8:1::]/48",
		"198.51.100.64/26": "ALL: 198.51.100.64/255.255.255.192",
	} {
		pr := netip.MustParsePrefix(p)
		if got := HostsDenyLine(pr); got != line {
			t.Errorf("HostsDenyLine(%s) = %q, want %q", p, got, line)
		}
		if got, ok := parseHostsDenyLine(line); !ok || got != pr {
			t.Errorf("parseHostsDenyLine(%q) = %v %v, want %s", line, got, ok, p)
		}
	}
	for _, bad := range []string{"ALL: [2001:db8::1]/64", "ALL: [2001:db8::]/129", "ALL: [2001:db8::]/064", "ALL: 198.51.100.0/255.0.255.0", "ALL: 198.51.100.0/24", "ALL: [2001:db8::]64"} {
		if p, ok := parseHostsDenyLine(bad); ok {
			t.Errorf("parseHostsDenyLine(%q) = %v, want not ours", bad, p)
		}
	}
	h := NewHostsDeny(filepath.Join(t.TempDir(), "hosts.deny"))
	p := netip.MustParsePrefix("2001:db8::/64")
	if err := h.Add([]Entry{{Net: p}, {Net: Single(netip.MustParseAddr("198.51.100.7"))}}); err != nil {
		t.Fatal(err)
	}
	if l, err := h.List(); err != nil || len(l) != 2 || l[1] != p {
		t.Fatalf("list %v %v", l, err)
	}
	if err := h.Delete([]netip.Prefix{p}); err != nil {
		t.Fatal(err)
	}
	if l, _ := h.List(); len(l) != 1 {
		t.Fatalf("after delete: %v", l)
	}
}
