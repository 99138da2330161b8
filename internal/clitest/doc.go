// Package clitest holds the end-to-end CLI scripts (testdata/script) that
// chain the four stages through real pipes.
package clitest
