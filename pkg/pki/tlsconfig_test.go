package pki

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"testing"
)

func TestMutualTLSHappyPath(t *testing.T) {
	ca := newTestCA(t)
	pool, _ := caPool(t, ca)
	srvCert := serverPair(t, ca)
	cliCert, _ := clientPair(t, ca, IssueOptions{}, "web1", "web2")

	for _, name := range []string{"", "localhost"} {
		r := handshake(t, ServerTLSConfig(srvCert, pool, nil), ClientTLSConfig(cliCert, pool, name))
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("serverName %q: server %v, client %v", name, r.serverErr, r.clientErr)
		}
		if got := NodesAllowed(r.peer); !slices.Equal(got, []string{"web1", "web2"}) {
			t.Fatalf("NodesAllowed = %v", got)
		}
	}
	// A server name the certificate does not carry is refused when asked for.
	r := handshake(t, ServerTLSConfig(srvCert, pool, nil), ClientTLSConfig(cliCert, pool, "other.example"))
	if r.clientErr == nil {
		t.Fatal("client accepted a server certificate for another name")
	}
}

func TestServerConfigShape(t *testing.T) {
	c := ServerTLSConfig(tls.Certificate{}, x509.NewCertPool(), nil)
	if c.ClientAuth != tls.RequireAndVerifyClientCert || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("ClientAuth %v MinVersion %x", c.ClientAuth, c.MinVersion)
	}
}
