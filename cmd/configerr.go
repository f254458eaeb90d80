package cmd

// isConfigError reports whether err is a configuration error (exit code 2).
func isConfigError(err error) bool { return false }
