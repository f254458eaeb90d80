// Package config owns sysmon's configuration: the table of every key with
// its default and meaning, reading the original tool's `set -a` style env
// files (quoted values, `export` prefixes) through godotenv, layering flags
// over the process environment over the file over defaults, and turning
// values into typed Producer and Consumer settings. Every error names the
// file, the key and the fix, and is an *Error so callers can exit with the
// usage code.
package config
