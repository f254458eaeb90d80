// Command sysmon is a Linux telemetry bridge: produce reads /proc and pushes
// samples over mutual-TLS WebSockets, consume writes them into PostgreSQL.
package main

import (
	"os"

	"github.com/sysmon/sysmon/cmd"
)

func main() { os.Exit(cmd.Main()) }
