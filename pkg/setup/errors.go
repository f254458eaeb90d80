package setup

import "errors"

// InputError marks an error in what the user asked for or answered (a bad
// value, a CA directory that cannot be named, input that ran out); cmd maps
// it to the usage exit code. Its message is the wrapped error's, unchanged.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// CAError carries an error returned by pkg/pki while opening the CA or
// minting from it, unwrapped, so that cmd can give it the same exit code and
// hint as the `sysmon ca` commands do.
type CAError struct{ Err error }

func (e *CAError) Error() string { return e.Err.Error() }
func (e *CAError) Unwrap() error { return e.Err }

// errInputEnded stops a guided setup whose input ran out: nothing is
// written from half the answers.
var errInputEnded = errors.New("input ended before every question was answered; nothing written")
