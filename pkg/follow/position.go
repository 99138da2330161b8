package follow

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Position says how far a file has been read: which file (device and
// inode, so a rotated file is still recognised under another name), how
// many bytes and lines of it were consumed, and the last bytes before that
// offset, so a file truncated and written again is not mistaken for the
// one that was read.
type Position struct {
	Dev, Ino uint64
	Offset   int64  // bytes consumed: the next line starts here
	Line     int64  // lines consumed
	Tail     []byte // up to TailSize bytes of the file just before Offset
}

// TailSize is how many bytes before the offset a Position remembers.
const TailSize = 64

func (p Position) String() string {
	return fmt.Sprintf("quietwatch-position 1 dev=%d ino=%d offset=%d line=%d tail=%x",
		p.Dev, p.Ino, p.Offset, p.Line, p.Tail)
}

// Equal reports whether p and q describe the same point in the same file.
func (p Position) Equal(q Position) bool {
	return p.Dev == q.Dev && p.Ino == q.Ino && p.Offset == q.Offset && p.Line == q.Line &&
		bytes.Equal(p.Tail, q.Tail)
}

// ParsePosition parses the text String writes.
func ParsePosition(s string) (Position, error) {
	var p Position
	f := strings.Fields(s)
	if len(f) != 7 || f[0] != "quietwatch-position" || f[1] != "1" {
		return p, errors.New("not a quietwatch position (version 1)")
	}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		var err error
		switch k {
		case "dev":
			p.Dev, err = strconv.ParseUint(v, 10, 64)
		case "ino":
			p.Ino, err = strconv.ParseUint(v, 10, 64)
		case "offset":
			p.Offset, err = strconv.ParseInt(v, 10, 64)
		case "line":
			p.Line, err = strconv.ParseInt(v, 10, 64)
		case "tail":
			p.Tail, err = hex.DecodeString(v)
		default:
			err = fmt.Errorf("unknown field %q", k)
		}
		if err != nil {
			return Position{}, fmt.Errorf("%s: %w", k, err)
		}
	}
	if p.Offset < 0 || p.Line < 0 || len(p.Tail) > TailSize || int64(len(p.Tail)) > p.Offset {
		return Position{}, errors.New("impossible offset, line or tail")
	}
	return p, nil
}

// LoadPosition reads a position file. A missing file gives ok == false
// and no error: nothing has been read yet.
func LoadPosition(name string) (pos Position, ok bool, err error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, false, nil
	}
	if err != nil {
		return Position{}, false, err
	}
	pos, err = ParsePosition(string(data))
	if err != nil {
		return Position{}, false, fmt.Errorf("position file %s: %w", name, err)
	}
	return pos, true, nil
}

// SavePosition writes pos to name atomically: a temporary file in the same
// directory, synced, then renamed over name. A crash leaves the old
// position or the new one, never half of one.
func SavePosition(name string, pos Position) error {
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(pos.String() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save position: %w", err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}
