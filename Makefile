# sysmon — build, test, demo, benchmarks, release.
# The two commands of the README: `make demo` and `make test`.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X github.com/sysmon/sysmon/cmd.version=$(VERSION) -X github.com/sysmon/sysmon/cmd.commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 30s

.PHONY: all build deps test check demo bench bench-producer fuzz fuzz-short release clean dev-start dev-stop loadtest

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o sysmon .

# What the tests and the demo need from the system (PostgreSQL's binaries and
# a few tools): installed with apt-get as root, otherwise named.
deps:
	@.ci/deps

# The whole gate: formatting, vet, staticcheck, the test suite with the race
# detector, and a few seconds of each fuzz target.
test: deps check
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) fuzz-short

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Runs the real job on this machine: throwaway certificates, a private
# PostgreSQL, a consumer and a producer on 127.0.0.1, then prints the latest
# process top read back from the database.
demo: deps build
	./sysmon demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

# CPU and RSS of the real producer at the default interval with N extra idle
# processes (N=2000 DURATION=60 by default).
bench-producer: build
	pkg/collect/testdata/measure-producer.sh ./sysmon $${N:-2000} $${DURATION:-60}

# Each fuzz target briefly (CI), or longer with FUZZTIME=10m make fuzz. The
# short run counts executions rather than seconds: Go 1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" when a wall-clock
# -fuzztime ends on a loaded machine (golang/go#75804, fixed in Go 1.27).
fuzz-short:
	$(MAKE) fuzz FUZZTIME=3000x

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

release:
	@mkdir -p dist
	for p in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64; do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/sysmon-$$os-$$arch$$ext . || exit 1; \
	done
	cd dist && sha256sum sysmon-* > SHA256SUMS

# The original's Docker workflow: PostgreSQL + Grafana with the dashboards.
dev-start:
	docker compose -f config/compose.yaml up -d

dev-stop:
	docker compose -f config/compose.yaml down

# Load test (issue 7): N simulated producers over real mutual TLS on
# loopback against one consumer and a private durable PostgreSQL, one sample
# a second with 30 processes each; prints the largest N whose p99
# sample-to-commit latency stays under 2 s. LOADTEST_N="100 2000" to choose,
# SYSMON_FLEET_SECONDS to lengthen the measured window [20].
loadtest:
	@best=none; for n in $${LOADTEST_N:-100 250 500 1000}; do \
	  out=$$(SYSMON_FLEET_N=$$n $(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchtime 1x -timeout 10m ./cmd 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "$$out" | grep -E '^BenchmarkFleet|fleet_bench_test' ; \
	  p99=$$(echo "$$out" | awk '/^BenchmarkFleet/ { for (i = 2; i <= NF; i++) if ($$i == "p99-ms") print $$(i-1) }'); \
	  if awk -v p="$$p99" 'BEGIN { exit !(p ~ /^[0-9.]+(e[+-]?[0-9]+)?$$/ && p + 0 < 2000) }'; then best=$$n; fi; \
	done; \
	echo "loadtest: largest N with p99 sample-to-commit latency under 2 s: $$best"

clean:
	rm -rf sysmon dist .demo
