//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// unitFile is a parsed systemd unit: each key of each section with its
// values in order (a key given twice keeps both; an empty value resets the
// list, as systemd does for list settings).
type unitFile map[string]map[string][]string

// parseUnit reads a unit file as systemd does: sections, comments (# and
// ;), backslash continuation lines.
func parseUnit(data []byte) (unitFile, error) {
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	var cont string
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cont != "" {
			line = cont + " " + line
			cont = ""
		}
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`)
			continue
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: not a setting: %q", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if v == "" {
			u[section][k] = nil
			continue
		}
		u[section][k] = append(u[section][k], v)
	}
	return u, sc.Err()
}

// get returns the last value of a setting, or def.
func (u unitFile) get(key, def string) string {
	if v := u["Service"][key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return def
}

// words returns every value of a list setting, split on white space.
func (u unitFile) words(key string) []string {
	var w []string
	for _, v := range u["Service"][key] {
		w = append(w, strings.Fields(v)...)
	}
	return w
}

// parseEnvFile reads an EnvironmentFile= as systemd does: KEY=VALUE lines,
// comments, values in single or double quotes (backslash escapes in double
// quotes), no expansion.
func parseEnvFile(data []byte) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: not KEY=VALUE: %q", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			q := v[0]
			v = v[1 : len(v)-1]
			if q == '"' {
				var b strings.Builder
				for i := 0; i < len(v); i++ {
					if v[i] == '\\' && i+1 < len(v) {
						i++
					}
					b.WriteByte(v[i])
				}
				v = b.String()
			}
		}
		env[k] = v
	}
	return env, sc.Err()
}

// execLine splits an Exec*= line as systemd does: an optional prefix of
// special characters ("-" means the exit code is ignored), words with
// quoting, "${VAR}" replaced as one word and "$VAR" split into words.
func execLine(line string, env map[string]string) (argv []string, ignoreFailure bool, err error) {
	for len(line) > 0 && strings.ContainsRune("-@+!:", rune(line[0])) {
		if line[0] == '-' {
			ignoreFailure = true
		}
		line = line[1:]
	}
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, false, fmt.Errorf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			argv = append(argv, strings.Fields(env[w[1:]])...)
			continue
		}
		argv = append(argv, os.Expand(w, func(k string) string { return env[k] }))
	}
	if len(argv) == 0 {
		return nil, false, fmt.Errorf("empty command line")
	}
	return argv, ignoreFailure, nil
}

func TestParseUnit(t *testing.T) {
	u, err := parseUnit([]byte("[Unit]\nDescription=x\n# c\n[Service]\nExecStartPre=/bin/a \\\n  --b ${V}\nCapabilityBoundingSet=CAP_A CAP_B\nCapabilityBoundingSet=CAP_C\nReadWritePaths=/x\nReadWritePaths=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.get("ExecStartPre", ""); got != "/bin/a  --b ${V}" {
		t.Errorf("ExecStartPre = %q", got)
	}
	if got := strings.Join(u.words("CapabilityBoundingSet"), ","); got != "CAP_A,CAP_B,CAP_C" {
		t.Errorf("CapabilityBoundingSet = %q", got)
	}
	if got := u.words("ReadWritePaths"); got != nil {
		t.Errorf("ReadWritePaths not reset: %q", got)
	}
	env, err := parseEnvFile([]byte("# c\nA=1\nB=\"two words\"\nC='x y'\nD=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if env["A"] != "1" || env["B"] != "two words" || env["C"] != "x y" || env["D"] != "" {
		t.Errorf("env = %q", env)
	}
	argv, ign, err := execLine(`-/bin/kill -HUP $MAINPID ${R} $S "q w"`, map[string]string{"MAINPID": "42", "R": "a b", "S": "c d"})
	if err != nil || !ign || strings.Join(argv, "|") != "/bin/kill|-HUP|42|a b|c|d|q w" {
		t.Errorf("execLine = %q, %v, %v", argv, ign, err)
	}
}
