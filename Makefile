GO       ?= go
BIN      := bin
DATA     ?= ./data
FUZZTIME ?= 30s
PKGS     := ./...

.PHONY: build run test test-unit bench fuzz lint cluster clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/sluice serve --data-dir $(DATA)

# What CI runs: vet, unit tests, fuzz seeds, crash tests, real-client and multi-node tests.
test: build
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 25m $(PKGS)

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

clean:
	rm -rf $(BIN)
