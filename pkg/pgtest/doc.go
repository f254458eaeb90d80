// Package pgtest owns the PostgreSQL test harness: one throwaway cluster
// per test binary (started lazily by the first test that asks, through
// pkg/pgserver), and a fresh database for every caller of URL.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) { url := pgtest.URL(t); ... }
//
// When the PostgreSQL binaries are missing, URL skips the test, except under
// CI=true where it fails it: CI must never pass by skipping the database.
package pgtest
