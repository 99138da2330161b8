package share

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestSampleAuth runs the fleet against a server configured with the
// sample scripts/etc/nats/auth.conf (keys made by share keygen): each
// server provisions the stream, publishes under its own origin and
// catches up; one that claims another's origin is refused by the server.
func TestSampleAuth(t *testing.T) {
	dir := t.TempDir()
	auth, err := os.ReadFile("../../scripts/etc/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(auth)
	seeds := map[string]string{}
	for _, w := range []string{"web1", "web2", "web3"} {
		seed := filepath.Join(dir, w+".nk")
		p := start(t, testEnv(nil), "keygen", seed) // prints the public key
		pub := p.next(t, 5*time.Second)
		if c := p.end(t); c != 0 || !strings.HasPrefix(pub, "U") {
			t.Fatalf("keygen: exit %d, %q, %s", c, pub, p.stderr.String())
		}
		if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("seed file: %v %v", fi, err)
		}
		conf = strings.ReplaceAll(conf, "NKEY_"+strings.ToUpper(w), pub)
		seeds[w] = seed
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := "listen: 127.0.0.1:-1\njetstream { store_dir: " + filepath.Join(dir, "js") + " }\ninclude ./auth.conf\n"
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("not ready")
	}
	url := ns.ClientURL()

	// No key: refused.
	anon := start(t, testEnv(nil), "--nats", url, "--origin", "web9")
	web2 := start(t, testEnv(nil), "--nats", url, "--origin", "web2", "--creds", seeds["web2"])
	web2.waitSynced(t) // web2 made the stream
	web1 := start(t, testEnv(nil), "--nats", url, "--origin", "web1", "--creds", seeds["web1"])
	web1.waitSynced(t)
	a := alert("198.51.100.41", 10)
	web1.write(t, a)
	web1.next(t, time.Second)
	if got := web2.next(t, 5*time.Second); !strings.Contains(got, `"origin":"web1"`) {
		t.Fatalf("web2 got %s", got)
	}
	// web3 was away: it catches up under its permissions.
	web3 := start(t, testEnv(nil), "--nats", url, "--origin", "web3", "--creds", seeds["web3"])
	if got := web3.next(t, 5*time.Second); !strings.Contains(got, `"src_ip":"198.51.100.41"`) {
		t.Fatalf("web3 caught up with %s", got)
	}
	// web1's key speaking as web2: the server refuses the publish.
	impostor := start(t, testEnv(nil), "--nats", url, "--origin", "web2", "--creds", seeds["web1"])
	impostor.write(t, alert("198.51.100.42", 10))
	impostor.next(t, time.Second)
	web3.none(t, time.Second)
	if c := impostor.end(t); c != 0 {
		t.Fatalf("impostor exit %d", c)
	}
	if s := impostor.stderr.String(); !strings.Contains(strings.ToLower(s), "permissions violation") {
		t.Errorf("impostor's stderr: %s", s)
	}
	if s := anon.stderr.String(); !strings.Contains(strings.ToLower(s), "authorization") {
		t.Errorf("no key: stderr %s", s)
	}
	for _, p := range []*proc{web1, web2, web3} {
		if c := p.end(t); c != 0 {
			t.Fatalf("exit %d; stderr:\n%s", c, p.stderr.String())
		}
		if s := p.stderr.String(); s != "" {
			t.Errorf("stderr: %s", s)
		}
	}
}
