package record

import "encoding/binary"

// Eight bytes at a time: x is eight bytes of text read as one
// little-endian word. (x - ones*c) & ^x & high has the high bit set in
// (at least) the lowest byte of x below c, and in no byte below it:
// borrows only carry upwards, and only out of a byte below c. A byte
// equal to c is found as a byte below 1 of x ^ ones*c. So the lowest set
// bit of each mask below is exact, which is all the scans need; a mask
// that is not zero is exact about whether there is such a byte at all.
const (
	ones = 0x0101010101010101
	high = 0x8080808080808080
)

func load8(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// load8s is load8 for a string or a byte slice.
func load8s[S ~string | ~[]byte](w S) uint64 {
	_ = w[7]
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// quoteMask marks the bytes of x that are '"'.
func quoteMask(x uint64) uint64 {
	q := x ^ (ones * '"')
	return (q - ones) & ^q & high
}

// controlMask marks the bytes of x below 0x20.
func controlMask(x uint64) uint64 { return (x - ones*0x20) & ^x & high }

// stringEndMask marks the bytes of x that end or escape a JSON string or
// may not stand in one: '"', '\\' and control characters.
func stringEndMask(x uint64) uint64 {
	bs := x ^ (ones * '\\')
	return controlMask(x) | quoteMask(x) | ((bs - ones) & ^bs & high)
}

// escapeMask marks the bytes of x that AppendString does not copy as they
// are: those of stringEndMask and every byte above 0x7f (which it checks
// for valid UTF-8).
func escapeMask(x uint64) uint64 { return stringEndMask(x) | x&high }
