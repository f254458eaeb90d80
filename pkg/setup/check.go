package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The check functions below vet one answer of the guided setup; the error
// is shown under the prompt and the question asked again, so it says what
// to answer instead.

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func checkIP(v string) error {
	if net.ParseIP(v) == nil {
		return fmt.Errorf("%q is not an IP address; use 0.0.0.0, :: or an address of this host", v)
	}
	return nil
}

func checkPort(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q is not a port; use a number from 1 to 65535", v)
	}
	return nil
}

func checkHost(v string) error {
	if v == "" || strings.ContainsAny(v, " /:") && net.ParseIP(v) == nil {
		return fmt.Errorf("%q is not a host name or IP address", v)
	}
	return nil
}

func checkHosts(v string) error {
	hosts := splitList(v)
	if len(hosts) == 0 {
		return errors.New("name at least one host name or address")
	}
	for _, h := range hosts {
		if err := checkHost(h); err != nil {
			return err
		}
	}
	return nil
}

func checkNode(v string) error {
	if v == "" || strings.ContainsAny(v, " \t/") {
		return fmt.Errorf("%q: use a name without spaces or slashes", v)
	}
	return nil
}

func checkEmail(v string) error {
	at := strings.IndexByte(v, '@')
	if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " /\\") {
		return fmt.Errorf("%q: use user@domain", v)
	}
	return nil
}

func checkInterval(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, err2 := strconv.ParseFloat(v, 64); err2 == nil {
			d, err = time.Duration(n*float64(time.Second)), nil
		}
	}
	if err != nil || d < 100*time.Millisecond {
		return fmt.Errorf("%q: use a duration such as 2s or 500ms, at least 100ms", v)
	}
	return nil
}

func checkDBURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && !strings.Contains(v, "=")) {
		return errors.New("use postgres://user:password@host:5432/dbname, or - for none")
	}
	return nil
}

func checkHostPortOrEmpty(v string) error {
	if v == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%q: use host:port such as 127.0.0.1:9464, or - for none", v)
	}
	return nil
}

// checkFileWarn accepts a path that does not exist yet (it may be copied in
// later) but says so.
func checkFileWarn(p *prompter) func(string) error {
	return func(v string) error {
		if v == "" {
			return errors.New("a path is required")
		}
		if _, err := os.Stat(v); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(p.out, "  ! %s does not exist yet; copy it there before starting sysmon\n", v)
		}
		return nil
	}
}

func checkFileRequired(p *prompter) func(string) error {
	warn := checkFileWarn(p)
	return func(v string) error {
		if v == "" {
			return errors.New("a client certificate is required with TLS (sysmon ca client makes one)")
		}
		return warn(v)
	}
}
