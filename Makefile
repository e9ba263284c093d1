# natmap: `make` builds bin/natmap; `make test` runs every test.
# A Go new enough for go.mod: on PATH, /usr/local/go, or fetched (scripts/go.sh).
GO       ?= $(shell scripts/go.sh)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
GOFLAGS  := -trimpath
export CGO_ENABLED := 0

# OpenWrt's arches: name GOARCH [extra env]
ARCHES := x86_64:amd64 aarch64:arm64 arm:arm:GOARM=7 mips:mips:GOMIPS=softfloat mipsel:mipsle:GOMIPS=softfloat

.PHONY: all build cross test vet fuzz bench demo clean
all: build

build:
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/natmap ./cmd/natmap

cross:
	@set -e; for a in $(ARCHES); do \
		name=$${a%%:*}; rest=$${a#*:}; goarch=$${rest%%:*}; extra=$$(echo $$rest | cut -s -d: -f2); \
		echo "build bin/natmap-$$name"; \
		env GOOS=linux GOARCH=$$goarch $$extra $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o bin/natmap-$$name ./cmd/natmap; \
	done

vet:
	@unformatted=$$(gofmt -l cmd internal e2e); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every test: unit tests, fuzz seeds, and the namespace-lab end-to-end tests
# (those need root and the lab's tools: scripts/deps.sh installs them).
test: vet
	scripts/deps.sh --openwrt
	$(GO) test -count=1 -timeout 20m ./...

# Fuzz each target for a while (FUZZTIME=1m make fuzz).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseResponse$$' -fuzztime=$(FUZZTIME) ./internal/stun/
	$(GO) test -run='^$$' -fuzz='^FuzzParseResponseAgreesWithPion$$' -fuzztime=$(FUZZTIME) ./internal/stun/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/cli/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/uci/
	$(GO) test -run='^$$' -fuzz='^FuzzRequest$$' -fuzztime=$(FUZZTIME) ./internal/ctl/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/netwatch/
	$(GO) test -run='^$$' -fuzz='^FuzzParseDNATListings$$' -fuzztime=$(FUZZTIME) ./internal/firewall/
	$(GO) test -run='^$$' -fuzz='^FuzzParseAnswer$$' -fuzztime=$(FUZZTIME) ./internal/updater/
	$(GO) test -run='^$$' -fuzz='^FuzzReadResponse$$' -fuzztime=$(FUZZTIME) ./internal/httpc/
	$(GO) test -run='^$$' -fuzz='^FuzzParseSecret$$' -fuzztime=$(FUZZTIME) ./internal/pkgtools/usign/
	$(GO) test -run='^$$' -fuzz='^FuzzParsePCP$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzParseNATPMP$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzParseSSDP$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzParseDescription$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzParseSOAP$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzXMLScanner$$' -fuzztime=$(FUZZTIME) ./internal/portmap/
	$(GO) test -run='^$$' -fuzz='^FuzzAnswer$$' -fuzztime=$(FUZZTIME) ./internal/portcheck/
	$(GO) test -run='^$$' -fuzz='^FuzzParseURL$$' -fuzztime=$(FUZZTIME) ./internal/portcheck/

# Time from start to first notify in the lab, and the micro-benchmarks.
bench: build
	scripts/bench.sh

# Build natmap and run it behind a full-cone NAT in a namespace lab (root).
demo: build
	scripts/deps.sh
	NATMAP_DEMO=1 $(GO) test -count=1 -v -run '^TestDemo$$' ./e2e/

clean:
	rm -rf bin

# OpenWrt packages without an SDK: dist/natmap_VERSION_ARCH.ipk for each of
# OpenWrt's arches above, and luci-app-natmap when its directory exists
# (scripts/ipk.sh; the feed package is openwrt/natmap).
.PHONY: ipk
ipk:
	GO='$(GO)' scripts/ipk.sh

# The same packages for OpenWrt 25's apk: dist/natmap_VERSION_ARCH.apk and
# luci-app-natmap_VERSION_noarch.apk, apk-tools v3 format, unsigned
# (scripts/ipk.sh -f apk; cmd/mkapk writes them, no apk-tools needed).
.PHONY: apk
apk:
	GO='$(GO)' scripts/ipk.sh -f apk

# A release: tag vVERSION, the feed's source tarball and its PKG_HASH, a
# CHANGELOG entry, and the ipk/apk packages and feeds in dist/release
# (scripts/release.sh).
.PHONY: release
release:
	@test "$(origin VERSION)" = "command line" || { echo "usage: make release VERSION=YYYYMMDD"; exit 2; }
	GO='$(GO)' scripts/release.sh '$(VERSION)'
