//go:build !linux

package block

func lockAbstract(string) (func(), error) { return func() {}, nil }
