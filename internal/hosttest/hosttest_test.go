package hosttest

import (
	"net/netip"
	"testing"
)

func TestLab(t *testing.T) {
	l := NewLab(t, "qwh")
	l.Srv.Serve(t, 8080)
	for _, h := range []Host{l.Atk, l.Adm} {
		for _, a := range []netip.Addr{l.Srv.IPv4, l.Srv.IPv6} {
			if !h.CanConnect(netip.AddrPortFrom(a, 8080)) {
				t.Errorf("%s cannot reach %s", h.NS, a)
			}
		}
	}
	if l.Atk.CanConnect(netip.AddrPortFrom(l.Srv.IPv4, 8081)) {
		t.Error("connect to a closed port succeeded")
	}
}
