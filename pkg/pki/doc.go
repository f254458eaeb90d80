// Package pki owns sysmon's certificates: a small certificate authority laid
// out on disk like the original system_monitor's openssl CA, the loaders for
// key pairs, CA bundles and certificate revocation lists, and the tls.Config
// builders that the transport uses for mutual TLS.
//
// # Directory layout
//
// The CA directory (sysmon ca --dir, default ./certs) matches the layout of
// the openssl scripts that the Erlang tool shipped (etnt/myca), so an
// operator's existing paths and env files keep working:
//
//	certs/cacert.pem                 CA certificate
//	private/cakey.pem                CA key (0400, directory 0700)
//	certs/server.crt, server.key     server certificate and key
//	certs/<SERIAL>.pem               copy of every issued certificate (openssl new_certs_dir)
//	client_keys/<email>_<YYYYMMDD>.pem  client key and certificate in one PEM (0600)
//	client_keys/<email>_<YYYYMMDD>.crt/.key  the same, split
//	crl/crl.pem, crl/<hash>.r0       CRL and the link that openssl rehash makes
//	index.txt, index.txt.attr, crlnumber  openssl ca database
//
// index.txt is written in openssl's own format, so `openssl ca -gencrl`
// still works on a directory that sysmon manages, and a directory made by
// the openssl scripts can be listed and revoked from by sysmon.
//
// # Key choices
//
// Keys are ECDSA P-384 by default, as the original CA's `openssl req -newkey
// ec -pkeyopt ec_paramgen_curve:secp384r1`; P-256 is available for smaller
// handshakes. Serial numbers are 128 random bits, every certificate carries a
// subject key identifier, and the CA is limited to path length 0 so that a
// leaked leaf key can never mint further certificates.
//
// A client certificate names the nodes it may report for as URI SANs of the
// form "sysmon-node:NAME" (see NodesAllowed); a certificate without any is
// not bound and the consumer applies first-come ownership instead.
//
// # Compatibility with the original's certificates
//
// The original CA issued every certificate with its v3_ca extension set: no
// extended key usage, no subjectAltName (the server certificate carries its
// host name only in the CN). ServerTLSConfig therefore accepts a client
// certificate without any extended key usage (RFC 5280: unrestricted) but
// refuses one whose extended key usage excludes clientAuth, and
// ClientTLSConfig with an empty server name verifies the consumer's chain
// against the CA without checking a host name, as the original did with SNI
// disabled.
package pki
