#!/bin/sh
# gen-original.sh DIR: build a CA directory the way the original
# system_monitor's CA scripts (github.com/etnt/myca) do, with openssl alone:
# EC P-384 keys, every certificate signed with the v3_ca extension set (so no
# extendedKeyUsage and no subjectAltName: the server's host is only in its
# CN), client key and certificate concatenated into one PEM, and a CRL in
# crl/rootca.crl with the <hash>.r0 link that Erlang's ssl_crl_hash_dir reads.
#
# pkg/pki's tests run it into a temporary directory; testdata/pki/original is
# one run of it, kept for the fuzz seeds and for machines without openssl.
set -eu
D=${1:?usage: gen-original.sh DIR}
mkdir -p "$D"
cd "$D"
mkdir -p certs private crl client_keys csr
: > index.txt
echo 01 > serial
echo 01 > crlnumber
cat > openssl.cnf <<'CNF'
[ ca ]
default_ca      = CA_default
[ CA_default ]
dir             = .
certs           = $dir/certs
crl_dir         = $dir/crl
database        = $dir/index.txt
new_certs_dir   = $dir/certs
certificate     = $dir/certs/cacert.pem
serial          = $dir/serial
crlnumber       = $dir/crlnumber
crl             = $dir/crl.pem
private_key     = $dir/private/cakey.pem
x509_extensions = v3_ca
name_opt        = ca_default
cert_opt        = ca_default
crl_extensions  = crl_ext
default_days    = 365
default_crl_days= 30
default_md      = sha256
preserve        = no
policy          = policy_match
[ policy_match ]
countryName             = optional
stateOrProvinceName     = optional
organizationName        = optional
organizationalUnitName  = optional
commonName              = supplied
emailAddress            = optional
[ req ]
default_md              = sha256
distinguished_name      = req_distinguished_name
x509_extensions = v3_ca
[ req_distinguished_name ]
[ v3_ca ]
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always,issuer
basicConstraints = critical,CA:true
[ crl_ext ]
authorityKeyIdentifier=keyid:always
CNF
SUBJ="/C=SE/ST=Stockholm/L=Stockholm/O=Original Org"
openssl req -config openssl.cnf -new -x509 -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes \
  -keyout private/cakey.pem -days 3650 -out certs/cacert.pem \
  -subj "$SUBJ/OU=root/CN=Original Root CA/emailAddress=ca@example.com"
chmod 0400 private/cakey.pem
# Server: CN only, no SAN.
openssl req -config openssl.cnf -new -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes \
  -keyout certs/server.key -out csr/server.csr \
  -subj "$SUBJ/OU=server/CN=localhost/emailAddress=ops@example.com"
openssl ca -config openssl.cnf -batch -notext -days 3650 -in csr/server.csr -out certs/server.crt
# Clients: key first (as the scripts' cat does) and certificate first.
for who in alice bob; do
  openssl req -config openssl.cnf -new -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes \
    -keyout client_keys/$who@example.com.key -out csr/$who.csr \
    -subj "$SUBJ/OU=client/CN=$who/emailAddress=$who@example.com"
  openssl ca -config openssl.cnf -batch -notext -days 3652 -in csr/$who.csr -out client_keys/$who@example.com.crt
done
cat client_keys/alice@example.com.key client_keys/alice@example.com.crt > client_keys/alice@example.com.pem
cat client_keys/bob@example.com.crt client_keys/bob@example.com.key > client_keys/bob@example.com.pem
# The same key in SEC 1 form behind an "EC PARAMETERS" block, as
# `openssl ecparam -genkey` writes it.
openssl pkey -in client_keys/alice@example.com.key -traditional -out client_keys/alice-sec1.key
{ openssl ecparam -name secp384r1; cat client_keys/alice-sec1.key client_keys/alice@example.com.crt; } > client_keys/alice-sec1.pem
# Revoke bob, as revoke-cert.sh does, and lay out the CRL directory.
openssl ca -config openssl.cnf -revoke client_keys/bob@example.com.crt -crl_reason keyCompromise
openssl ca -config openssl.cnf -gencrl -out crl/rootca.crl
HASH=$(openssl crl -noout -hash -in crl/rootca.crl)
(cd crl && rm -f ./*.r? && ln -s rootca.crl "$HASH.r0")
rm -rf csr
