# georep: the contract that people and CI share. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
TOOLS   := $(CURDIR)/.tools/bin
BIN     := $(CURDIR)/bin
export PATH := $(TOOLS):$(PATH)

# Pinned tool versions (installed with `go install` from the Go module proxy).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
GRPCURL_VERSION            := v1.9.3

# Debian packages the tests and the demo need: GlusterFS for integration/gluster,
# openssh-server for gsyncd in the side-by-side benchmark and rsync over ssh in
# the WAN benchmark, systemd for
# systemd-analyze and openssl for deploy/tls/make-certs.sh in the deploy test,
# iproute2 for the network namespaces of the WAN test, prometheus for promtool
# (the alert rules' unit tests and the lint of a real /metrics scrape; Debian's
# package, no service started, rather than building promtool from the whole
# Prometheus module).
DEB_PACKAGES := rsync attr acl glusterfs-server glusterfs-client openssh-server systemd openssl iproute2 prometheus

.PHONY: help deps tools build test unit integration lint generate check-generate demo bench bench-wan bench-scale bench-audit bench-gluster fuzz fuzz-ci clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install what the tests need from Debian when missing (services such as sshd are not started)
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$policy >/dev/null; $$SUDO chmod 755 $$policy; \
		fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
		rc=$$?; if [ -n "$$policy" ]; then $$SUDO rm -f $$policy; fi; exit $$rc; \
	fi

tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc $(TOOLS)/grpcurl ## install pinned tools (buf, protoc plugins, grpcurl) into .tools/bin

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/grpcurl:
	GOBIN=$(TOOLS) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

build: ## build georep-master and georep-slave into ./bin
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

generate: tools ## regenerate gen/ from proto/ with buf and the pinned local plugins
	buf lint
	buf generate

check-generate: generate ## fail when gen/ is stale (differs from what `make generate` produces)
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit the result"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- gen/); \
	if [ -n "$$untracked" ]; then echo "gen/ has files not committed: $$untracked"; exit 1; fi

lint: tools ## gofmt, go vet, go mod tidy check and buf lint
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	buf lint

unit: ## unit tests only (no binaries, no daemons)
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /integration)

# The GlusterFS tests run after the others, not beside them: they share one
# glusterd, and with the plain-directory package loading both cores at the
# same time their live rounds overran the 90 s they wait for convergence.
integration: deps build ## end-to-end tests: real binaries, real rsync, loopback gRPC
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 20m $$($(GO) list ./integration/... | grep -v -e /integration/gluster -e /integration/cluster)
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 20m ./integration/gluster/...
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 20m ./integration/cluster/...

test: deps check-generate lint unit fuzz-ci integration ## everything CI runs: generated code check, lint, unit tests, a short fuzz of every target, integration tests

demo: deps build ## replicate a sample tree through a local slave and show that it matches
	./integration/demo/demo.sh

bench: deps build ## georep vs local rsync -a: 20,000 x 4 KiB files and 4 x 256 MiB, same run, same disk
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 60m -run '^$$' -bench . -benchtime 1x ./integration/bench/

bench-wan: deps build ## georep vs rsync over ssh through a delay line (400 Mbit/s) at 0, 50 and 100 ms RTT: 20,000 x 4 KiB, 1,500 mixed ops, 4 x 256 MiB (GEOREP_BENCH_SCALE=0.1 for a quick run)
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 90m -run '^$$' -bench . -benchtime 1x ./integration/bench/wan/

# Sizes: GEOREP_BENCH_SCALE (default 100k,1M; e.g. 200k, 10M or 100k,1M,10M);
# more knobs in integration/bench/scale/doc.go.
BENCH_SCALE_TIMEOUT ?= 12h
bench-scale: deps build ## georep vs rsync -a on 100k and 1M empty files: first and no-change pass, files/s, peak RSS of master and slave, catalog size (GEOREP_BENCH_SCALE=10M or a list)
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout $(BENCH_SCALE_TIMEOUT) -run '^$$' -bench . -benchtime 1x ./integration/bench/scale/

bench-audit: deps build ## what a whole audit round costs (time, bytes on the link) on 200,000 x 4 KiB files, without and with --content, at 0 and 50 ms RTT (GEOREP_BENCH_SCALE=20000 for a quick run)
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 90m -run '^$$' -bench . -benchtime 1x ./integration/bench/audit/

bench-gluster: deps build ## georep vs gsyncd on real GlusterFS volumes: 10,000 x 4 KiB, 1,500 mixed ops, latency, 4 x 256 MiB (GEOREP_BENCH_SCALE=0.02 for a quick run)
	GEOREP_BIN=$(BIN) $(GO) test -count=1 -timeout 90m -run '^$$' -bench . -benchtime 1x ./integration/gluster/bench/

# Each fuzz target, as package:Function. Their seed corpora under testdata/fuzz
# also run as plain tests in `make test`.
FUZZ_TARGETS := ./rpc/gfid:FuzzParse ./master/changelog:FuzzParse ./master/changelog:FuzzParseBrick ./slave:FuzzValidateRsyncArgs \
	./slave:FuzzEntryOpsRequest ./slave/replica:FuzzApplyEntries ./master/journal:FuzzRead ./master/journal:FuzzParseEvents

fuzz: ## run each fuzz target for a short time (FUZZTIME, default 20s)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $${FUZZTIME:-20s} $$pkg; \
	done

# A count, not a duration: with a duration the fuzzer reported "context deadline
# exceeded" as a failure when its time ran out while one input was still running.
fuzz-ci: ## every fuzz target for FUZZCOUNT inputs each (default 10000x); part of `make test`
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$pkg $$fn ($${FUZZCOUNT:-10000x})"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $${FUZZCOUNT:-10000x} $$pkg \
		|| { echo "$$fn found a failing input: see $$pkg/testdata/fuzz/$$fn/"; exit 1; }; \
	done

clean: ## remove build output
	rm -rf $(BIN)
