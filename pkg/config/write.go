package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Render writes an env file for role: every key of the role with its
// meaning as a comment, the given values set, unset keys commented out at
// their defaults so the file documents itself.
func Render(role Role, values map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sysmon %s settings, written by `sysmon setup %s`.\n", role, role)
	b.WriteString("# Read with `sysmon " + map[Role]string{RoleConsumer: "consume", RoleProducer: "produce"}[role] + " --env FILE`; also valid for `set -a; . FILE`.\n")
	b.WriteString("# Precedence: command-line flags, then the process environment, then this file.\n")
	for _, k := range KeysFor(role) {
		b.WriteString("\n# ")
		b.WriteString(k.Doc)
		b.WriteString("\n")
		v, set := values[k.Name]
		if !set {
			fmt.Fprintf(&b, "#%s=%s\n", k.Name, quote(k.Default))
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", k.Name, quote(v))
	}
	return b.String()
}

func quote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`", "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// WriteEnvFile renders values for role into path atomically. A file it
// replaces is kept as path.bak-YYYYMMDDhhmmss. The file is 0600 when it holds
// a secret, else 0644. It returns the backup path, if any.
func WriteEnvFile(path string, role Role, values map[string]string) (backup string, err error) {
	mode := os.FileMode(0o644)
	for name := range values {
		if k, ok := LookupKey(name); ok && k.Secret && values[name] != "" {
			mode = 0o600
		}
	}
	if _, err := os.Stat(path); err == nil {
		backup = path + ".bak-" + time.Now().Format("20060102150405")
		if err := os.Rename(path, backup); err != nil {
			return "", fmt.Errorf("back up %s: %w", path, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sysmon-env-*")
	if err != nil {
		return backup, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return backup, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.WriteString(Render(role, values)); err != nil {
		tmp.Close()
		return backup, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return backup, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return backup, fmt.Errorf("write %s: %w", path, err)
	}
	return backup, nil
}
