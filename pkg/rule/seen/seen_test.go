package seen

import (
	"os"
	"path/filepath"
	"testing"
)

func key(parts ...string) Hash {
	h := NewHash()
	for _, p := range parts {
		h = h.Add([]byte(p))
	}
	return h
}

func TestFirstTimeAndPersist(t *testing.T) {
	s := New(100)
	if !s.FirstTime(key("1:2:3", "a", "b")) || s.FirstTime(key("1:2:3", "a", "b")) {
		t.Fatal("first/second sighting wrong")
	}
	if key("ab", "c") == key("a", "bc") {
		t.Fatal("separator missing")
	}
	path := filepath.Join(t.TempDir(), "fts")
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	r, err := Load(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.FirstTime(key("1:2:3", "a", "b")) {
		t.Error("reloaded set forgot the key")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none"), 10); err != nil {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(path, []byte("junk"), 0o600)
	if _, err := Load(path, 10); err == nil {
		t.Error("junk file accepted")
	}
}

func TestBounded(t *testing.T) {
	s := New(10)
	for i := 0; i < 1000; i++ {
		s.FirstTime(Hash(i))
		if s.Len() > 10 {
			t.Fatalf("len %d over the cap", s.Len())
		}
	}
	// the most recent keys are remembered
	if s.FirstTime(Hash(999)) {
		t.Error("newest key forgotten")
	}
	if !s.FirstTime(Hash(1)) {
		t.Error("oldest key still remembered")
	}
}

// A file cut short keeps the keys before the cut, says so, and the next
// Save writes them back (it does not need a new key to repair the file).
func TestTruncatedKeepsKeys(t *testing.T) {
	s := New(100)
	for i := 0; i < 10; i++ {
		s.FirstTime(Hash(i))
	}
	path := filepath.Join(t.TempDir(), "fts")
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)-5], 0o600) // the last key cut in the middle
	r, err := Load(path, 100)
	if err == nil || r == nil {
		t.Fatalf("truncated file: set %v, error %v", r, err)
	}
	if r.Len() != 9 {
		t.Errorf("%d keys kept, want 9", r.Len())
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	r, err = Load(path, 100)
	if err != nil || r.Len() != 9 {
		t.Errorf("after the repairing save: %d keys, %v", r.Len(), err)
	}
}
