package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzRequest: for any subject and text, every format's body is valid
// (JSON where it is JSON; valid UTF-8), within the service's cap, and a
// Retry-After value never gives a negative or unbounded wait.
func FuzzRequest(f *testing.F) {
	f.Add("subject", "text", "7")
	f.Add("é\x00<!channel>", strings.Repeat("```@everyone\n", 400), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add("\xff", "\xfe\xff", "-1")
	f.Fuzz(func(t *testing.T, subject, text, ra string) {
		p := &Payload{Subject: subject, Text: text, Alerts: []string{"a"}}
		for _, format := range Formats {
			raw := "https://x.example/h"
			if format == "telegram" {
				raw += "?chat_id=1"
			}
			u, _ := ParseURL(raw)
			_, body, _, err := (&Hook{URL: u, Format: format}).Request(p)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if format == "ntfy" {
				if utf8.ValidString(text) && utf8.RuneCount(body) > 4000 {
					t.Errorf("ntfy: %d runes", utf8.RuneCount(body))
				}
				continue
			}
			var v map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("%s: invalid JSON: %v\n%s", format, err, body)
			}
			if format == "discord" {
				if c, _ := v["content"].(string); utf8.RuneCountInString(c) > 2000 {
					t.Errorf("discord: content of %d runes", utf8.RuneCountInString(c))
				}
			}
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if d := retryAfter(ra, now); d < 0 || d > 24*time.Hour {
			t.Errorf("retryAfter(%q) = %v", ra, d)
		}
	})
}
