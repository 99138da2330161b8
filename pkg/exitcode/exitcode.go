// Package exitcode is the one table of process exit codes shared by every
// stage, and an error type that carries its code up to Main.
package exitcode

import (
	"errors"
	"fmt"
)

// The exit codes of DESIGN.md (sysexits.h where one fits).
const (
	OK          = 0  // success
	Failure     = 1  // runtime failure
	Usage       = 2  // bad flags or arguments
	DataErr     = 65 // bad input data, with --strict
	Unavailable = 69 // a needed program is missing (sendmail, iptables)
	TempFail    = 75 // temporary failure, try again later
	Config      = 78 // bad configuration
)

// Error is an error that ends the process with Code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// New wraps err so that the process exits with code. A nil err stays nil.
func New(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Errorf formats an error that exits with code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code for err: OK for nil, the code of the outermost
// *Error in its chain, and Failure otherwise.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failure
}

// Reported returns an error that exits with code without printing
// anything more: the stage has already written its diagnostics (a list of
// configuration errors, say).
func Reported(code int) error {
	return &Error{Code: code, Err: errReported}
}

var errReported = errors.New("reported")

// IsReported reports whether err's diagnostics were already written.
func IsReported(err error) bool { return errors.Is(err, errReported) }
