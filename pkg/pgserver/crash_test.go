//go:build linux

package pgserver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary double as a process that owns a server,
// for TestOwnerKilled.
func TestMain(m *testing.M) {
	if dir := os.Getenv("PGSERVER_TEST_OWNER"); dir != "" {
		s, err := Start(context.Background(), Options{DataDir: dir, Ephemeral: true})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("url:", s.URL())
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// TestOwnerKilled kills -9 a process running a server (as a crashed
// consumer in embedded-database mode): the server shuts itself down, no
// orphan keeps the port, and a new Start on the same data directory works,
// on the same port.
func TestOwnerKilled(t *testing.T) {
	requireBinaries(t)
	dir := t.TempDir() + "/data"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGSERVER_TEST_OWNER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "url: ") {
		cmd.Process.Kill()
		t.Fatalf("owner: %q %v", line, err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "url: "))
	query1(t, url)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	ctx := context.Background()
	s, err := Start(ctx, Options{DataDir: dir, Ephemeral: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	query1(t, s.URL())
	if s.URL() != url {
		t.Fatalf("URL changed over a restart: %s -> %s", url, s.URL())
	}
}
