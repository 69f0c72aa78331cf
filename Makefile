SHELL    := /bin/bash
GO       ?= go
BIN      := bin
DATA     ?= ./data
FUZZTIME ?= 30s
PKGS     := ./...
# Tests that start `sluice serve` processes use the binary `make build` just made.
TESTENV  := SLUICE_TEST_BINARY=$(abspath $(BIN)/sluice)
# runtests NAME, COMMAND: runs a go test COMMAND, its output also in $(BIN)/NAME.out; when it
# fails, the failing tests' own messages are printed again at the end, below the node logs.
runtests = echo '$(2)'; set -o pipefail; $(2) 2>&1 | tee $(BIN)/$(1).out || { scripts/test-failures.sh $(BIN)/$(1).out; exit 1; }

.PHONY: build run test test-unit test-e2e test-cluster bench fuzz lint cluster clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/sluice serve --data-dir $(DATA)

# What CI runs: gofmt, vet, unit tests, fuzz seeds, crash tests, real-client (e2e/) and
# multi-node tests.
test: build
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet $(PKGS)
	@$(call runtests,test,$(TESTENV) $(GO) test -count=1 -timeout 25m $(PKGS))

# Everything but the tests that start server processes.
test-unit:
	$(GO) test -count=1 -timeout 15m $$($(GO) list $(PKGS) | grep -v /e2e)

# Only the tests that drive `sluice serve` processes with real clients.
test-e2e: build
	@$(call runtests,test-e2e,$(TESTENV) $(GO) test -count=1 -timeout 25m -v ./e2e)

# The multi-node tests too heavy for `make test`.
test-cluster: build
	@$(call runtests,test-cluster,$(TESTENV) SLUICE_CLUSTER_TESTS=all $(GO) test -count=1 -timeout 40m -run Cluster -v ./e2e)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Each fuzz target for FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff

# Three local nodes in one Raft cluster: Kafka on 9092/19092/29092, Raft on
# 9093/19093/29093, admin HTTP on 9644/19644/29644 (node N adds (N-1)*10000 to
# KAFKA_PORT, RAFT_PORT and ADMIN_PORT), data under $(DATA)/nodeN, logs in
# $(DATA)/nodeN.log. Ctrl-C stops all three cleanly; a node that dies or is killed
# leaves the others running.
KAFKA_PORT ?= 9092
RAFT_PORT  ?= 9093
ADMIN_PORT ?= 9644
cluster: build
	@mkdir -p $(DATA)/node1 $(DATA)/node2 $(DATA)/node3
	@bash -c ' \
	  port() { echo $$(( $$1 + ($$2 - 1) * 10000 )); }; \
	  peers=1@127.0.0.1:$$(port $(RAFT_PORT) 1),2@127.0.0.1:$$(port $(RAFT_PORT) 2),3@127.0.0.1:$$(port $(RAFT_PORT) 3); \
	  pids=""; \
	  stop() { trap - INT TERM; echo; echo "cluster: stopping"; kill -TERM $$pids 2>/dev/null; wait $$pids; echo "cluster: stopped"; exit $$1; }; \
	  trap "stop 0" INT TERM; \
	  for i in 1 2 3; do \
	    $(BIN)/sluice serve --node-id $$i --data-dir $(DATA)/node$$i --listen 127.0.0.1:$$(port $(KAFKA_PORT) $$i) \
	      --raft-listen 127.0.0.1:$$(port $(RAFT_PORT) $$i) --admin-listen 127.0.0.1:$$(port $(ADMIN_PORT) $$i) \
	      --peers $$peers >>$(DATA)/node$$i.log 2>&1 & \
	    pids="$$pids $$!"; \
	  done; \
	  echo "cluster: Kafka on 127.0.0.1:$$(port $(KAFKA_PORT) 1),127.0.0.1:$$(port $(KAFKA_PORT) 2),127.0.0.1:$$(port $(KAFKA_PORT) 3);" \
	    "admin on 127.0.0.1:$(ADMIN_PORT); logs in $(DATA)/node{1,2,3}.log; Ctrl-C stops it"; \
	  while [ -n "$$(jobs -rp)" ]; do \
	    wait -n; echo "cluster: a node exited (see $(DATA)/node*.log); the others keep running, Ctrl-C stops them"; \
	  done; echo "cluster: every node has exited"; exit 1'

clean:
	rm -rf $(BIN)
