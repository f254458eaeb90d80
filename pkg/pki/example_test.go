package pki_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sysmon/sysmon/pkg/pki"
)

// Example shows the whole path: a CA, the consumer's and a producer's
// certificates, and the two TLS configurations the transport uses.
func Example() {
	dir, _ := os.MkdirTemp("", "sysmon-ca")
	defer os.RemoveAll(dir)

	ca, err := pki.Init(dir, pki.InitOptions{CN: "Example CA", Org: "Example"})
	if err != nil {
		log.Fatal(err)
	}
	crt, key, _ := ca.IssueServer([]string{"localhost", "127.0.0.1"}, pki.IssueOptions{})
	pemPath, _ := ca.IssueClient("web", "ops@example.com", []string{"web1"}, pki.IssueOptions{})

	// Consumer: CONSUMER_CERTFILE/KEYFILE, CONSUMER_CACERTFILE, CONSUMER_CRLDIR.
	srvPair, _ := pki.LoadKeyPair(crt, key)
	pool, cas, _ := pki.LoadCAPool(ca.Path(pki.CACertFile))
	rev, _ := pki.NewRevocations(ca.Path(pki.CRLDir), cas, slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rev.Watch(ctx, 2*time.Second, func() {
		// Re-check every live session: rev.Check(leaf) != nil -> close 1008.
	})
	_ = pki.ServerTLSConfig(srvPair, pool, rev)

	// Producer: PRODUCER_CERTFILE holds key and certificate; no
	// PRODUCER_SERVER_NAME means chain-only verification.
	cliPair, _ := pki.LoadKeyPair(pemPath, "")
	_ = pki.ClientTLSConfig(cliPair, pool, "")

	fmt.Println(filepath.Base(filepath.Dir(pemPath)), pki.NodesAllowed(cliPair.Leaf))
	// Output: client_keys [web1]
}
