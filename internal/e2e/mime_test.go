//go:build linux

package e2e

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
)

type mimeDecoder = mime.WordDecoder

func decodeQP(b []byte) string {
	out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	if err != nil {
		return string(b)
	}
	return string(out)
}
