package pki

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// BundleCACertName is the CA certificate's name inside a bundle.
const BundleCACertName = "cacert.pem"

// Bundle writes tgzPath, a gzip'd tar holding the CA certificate
// (cacert.pem) and the client's key+certificate PEM under its own base
// name: what the original's operators packed by hand to copy to a monitored
// host. The archive holds a private key, so it is written 0600; an existing
// tgzPath is refused (ErrExists). The PEM must be a key pair issued by this
// CA.
func (ca *CA) Bundle(pemPath, tgzPath string) error {
	kp, err := LoadKeyPair(pemPath, "")
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := kp.Leaf.CheckSignatureFrom(ca.Cert); err != nil {
		return fmt.Errorf("bundle %s: not issued by this CA: %w", pemPath, err)
	}
	clientPEM, err := os.ReadFile(pemPath)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	caPEM := certPEM(ca.Cert.Raw)

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	mtime := ca.now().Truncate(time.Second)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{BundleCACertName, 0o644, caPEM},
		{filepath.Base(pemPath), 0o600, clientPEM},
	} {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return writeFileAtomic(tgzPath, buf.Bytes(), 0o600, false)
}
