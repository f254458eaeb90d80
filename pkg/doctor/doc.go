// Package doctor owns `sysmon setup check`: it validates one env file end
// to end, as the consumer or producer would use it, and reports one line per
// check with what to do about each problem. Beyond what pkg/config checks
// on its own (key names, values, readable files), it loads the certificates
// (key matches certificate, chain to the CA, extended key usage for the
// role, expiry), reads the CRL directory, and tries the network: for a
// producer the consumer's TCP port and a full mutual-TLS handshake, for a
// consumer the database connection and the role's right to create tables.
//
// It is the one package besides cmd that uses config, pki and pgx together;
// it only reads, and leaves nothing behind except log lines in a consumer
// it connects to.
package doctor
