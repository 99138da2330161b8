package webhook

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"7", 7 * time.Second}, {" 30 ", 30 * time.Second},
		{"99999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		if got := retryAfter(c.v, now); got != c.want {
			t.Errorf("retryAfter(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestReadFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "hooks")
	text := "# comment\n\nhttps://hooks.example/services/SECRETa\nslack https://hooks.example/services/SECRETb\n" +
		"irc https://x.example/SECRETc\nftp://x.example/SECRETd\nhttps:// SECRETe x\nhttps://\n"
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	hooks, err := ReadFile(f, "json")
	if len(hooks) != 2 || hooks[0].Format != "json" || hooks[1].Format != "slack" {
		t.Fatalf("hooks: %+v", hooks)
	}
	if err == nil {
		t.Fatal("no error for the bad lines")
	}
	for _, want := range []string{":5: format \"irc\"", ":6: scheme \"ftp\"", ":7: want URL or FORMAT URL", ":8: no host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error shows a URL: %v", err)
	}
	if hooks[0].Label() != "webhook https://hooks.example" || strings.Contains(hooks[0].Name(), "SECRET") || hooks[0].Name() == hooks[1].Name() {
		t.Errorf("label %q, names %q %q", hooks[0].Label(), hooks[0].Name(), hooks[1].Name())
	}
}

func TestRedact(t *testing.T) {
	u, err := ParseURL("https://user:PASSWORD1@api.example/bot1234:TOKENXYZ/sendMessage?chat_id=-1009876&key=KEYVALUE")
	if err != nil {
		t.Fatal(err)
	}
	h := &Hook{URL: u, Format: "telegram"}
	got := h.redact(`Post "` + u.String() + `": bad; token bot1234:TOKENXYZ; key KEYVALUE; chat -1009876; PASSWORD1`)
	for _, s := range []string{"TOKENXYZ", "KEYVALUE", "1009876", "PASSWORD1"} {
		if strings.Contains(got, s) {
			t.Errorf("redacted text shows %s: %s", s, got)
		}
	}
}

func TestCut(t *testing.T) {
	s := strings.Repeat("é", 5000)
	c := cut(s, 2000)
	if n := len([]rune(c)); n != 2000 || !strings.HasSuffix(c, "(cut)") {
		t.Errorf("cut: %d runes, %q", n, c[len(c)-20:])
	}
	if cut("short", 10) != "short" {
		t.Error("a short text was cut")
	}
}

// TestDiscordMentions: an alert's @everyone pings nobody, and Slack's
// <!channel> is escaped.
func TestMentions(t *testing.T) {
	u, _ := ParseURL("https://x.example/h")
	p := &Payload{Subject: "s", Text: "@everyone <!channel> ```"}
	_, body, _, err := (&Hook{URL: u, Format: "discord"}).Request(p)
	if err != nil || !strings.Contains(string(body), `"allowed_mentions":{"parse":[]}`) || strings.Contains(string(body), "```\\n```") {
		t.Errorf("discord: %s, %v", body, err)
	}
	_, body, _, err = (&Hook{URL: u, Format: "slack"}).Request(p)
	if err != nil || strings.Contains(string(body), "<!channel>") {
		t.Errorf("slack: %s, %v", body, err)
	}
	if _, _, _, err := (&Hook{URL: u, Format: "telegram"}).Request(p); err == nil {
		t.Error("telegram without chat_id: no error")
	}
}
