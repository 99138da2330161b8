//go:build !linux

package follow

import (
	"io/fs"
	"reflect"
)

// fileID returns the device and inode of a file, which survive a rename,
// read from the platform's stat structure by field name (its types differ
// between systems); 0, 0 where it has none.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	v := reflect.ValueOf(fi.Sys())
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, 0
	}
	return uintField(v, "Dev"), uintField(v, "Ino")
}

func uintField(v reflect.Value, name string) uint64 {
	f := v.FieldByName(name)
	switch {
	case !f.IsValid():
		return 0
	case f.CanUint():
		return f.Uint()
	case f.CanInt():
		return uint64(f.Int())
	}
	return 0
}
