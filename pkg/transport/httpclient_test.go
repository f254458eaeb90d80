package transport_test

import (
	"crypto/tls"
	"net/http"
)

type httpClient struct{ tls *tls.Config }

func (h *httpClient) client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls}}
}
