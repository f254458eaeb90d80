// Package setup owns writing a role's env file for `sysmon setup
// consumer|producer`: the guided questions with their defaults and answer
// checks, the defaults computed from earlier answers, the validation that
// refuses a value `sysmon consume|produce` would refuse, and minting the
// role's certificate from a CA directory on the way.
//
// It reads and writes through pkg/config (key table, loading, env file
// writing) and pkg/pki (the CA); cmd owns the flags, the terminal detection
// and the exit codes. Errors caused by what the user asked for are marked
// with InputError, errors of the CA with CAError, so that cmd can map them
// to exit codes and hints without parsing messages.
//
// `sysmon setup check` is not here: pkg/doctor owns it.
package setup
