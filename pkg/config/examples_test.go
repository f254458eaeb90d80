package config

import (
	"os"
	"path/filepath"
	"testing"
)

// exampleValues are the values config/*.env set: the original's keys, as its
// files set them, pointing at the layout `sysmon ca` writes.
var exampleValues = map[Role]map[string]string{
	RoleConsumer: {
		"CONSUMER_ENABLE":      "true",
		"CONSUMER_LISTEN_IP":   "0.0.0.0",
		"CONSUMER_LISTEN_PORT": "8443",
		"CONSUMER_USE_TLS":     "true",
		"CONSUMER_CACERTFILE":  "/etc/sysmon/certs/certs/cacert.pem",
		"CONSUMER_CERTFILE":    "/etc/sysmon/certs/certs/server.crt",
		"CONSUMER_KEYFILE":     "/etc/sysmon/certs/certs/server.key",
		"CONSUMER_CRLDIR":      "/etc/sysmon/certs/crl",
	},
	RoleProducer: {
		"PRODUCER_ENABLE":     "true",
		"PRODUCER_IP":         "collector.example.com",
		"PRODUCER_PORT":       "8443",
		"PRODUCER_USE_TLS":    "true",
		"PRODUCER_CACERTFILE": "/etc/sysmon/cacert.pem",
		"PRODUCER_CERTFILE":   "/etc/sysmon/producer.pem",
	},
}

// TestExampleEnvFiles keeps config/consumer.env and config/producer.env
// equal to what `sysmon setup` renders, so every key is there with its
// meaning. SYSMON_UPDATE_EXAMPLES=1 rewrites them.
func TestExampleEnvFiles(t *testing.T) {
	for role, values := range exampleValues {
		path := filepath.Join("..", "..", "config", string(role)+".env")
		want := Render(role, values)
		if os.Getenv("SYSMON_UPDATE_EXAMPLES") == "1" {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is out of date: run SYSMON_UPDATE_EXAMPLES=1 go test ./pkg/config", path)
		}
		m, err := ReadEnvFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range values {
			if m[k] != v {
				t.Errorf("%s: %s = %q, want %q", path, k, m[k], v)
			}
		}
	}
}
