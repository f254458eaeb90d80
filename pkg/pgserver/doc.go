// Package pgserver owns a private PostgreSQL cluster run from the system's
// PostgreSQL binaries: it finds them, runs initdb into a data directory on
// first start, starts the server on 127.0.0.1 with its unix socket in a
// private directory, creates the application's role and database, and stops
// the server on Close.
//
// The same code serves the test harness (pkg/pgtest), `make demo` and the
// embedded-database mode of `sysmon consume`.
//
// PostgreSQL refuses to run as root. When the caller is root, initdb and
// postgres run as the `postgres` OS account (Debian's package creates it),
// the data directory is chowned to it and its parent directories are made
// traversable (o+x, never readable).
//
// Authentication: unix-socket connections are trusted (the socket directory
// is private, mode 0700, owned by the server's account); TCP connections are
// accepted only on loopback and need the role's password (SCRAM-SHA-256).
//
// Systems: Linux is the reference. macOS works the same but has no
// parent-death signal, so a server whose owner was killed with SIGKILL keeps
// running until stopped by hand. On Windows FindBinaries and Start fail
// with a one-line error asking for CONSUMER_DB_URL.
package pgserver
