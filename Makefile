# Installs streamd as a systemd user service.
#   make install [PREFIX=~/.local]   release build; binaries, user units and the example config
#   make uninstall [PREFIX=~/.local]
#   make verify                      systemd-analyze verify on the installed units (prints nothing when clean)
# CONFIGURATION=debug installs the debug build (used by scripts/systemd-test).

PREFIX ?= $(HOME)/.local
override PREFIX := $(patsubst ~%,$(HOME)%,$(PREFIX))
BINDIR ?= $(PREFIX)/bin
XDG_CONFIG_HOME ?= $(HOME)/.config
UNITDIR ?= $(XDG_CONFIG_HOME)/systemd/user
CONFIG_FILE ?= $(XDG_CONFIG_HOME)/streamd.toml
CONFIGURATION ?= release
SWIFT ?= swift

.PHONY: all build install uninstall verify

all: build

build:
	$(SWIFT) build -c $(CONFIGURATION) --product streamd
	$(SWIFT) build -c $(CONFIGURATION) --product streamctl

install: build
	install -d -m 0755 "$(BINDIR)" "$(UNITDIR)"
	bin="$$($(SWIFT) build -c $(CONFIGURATION) --show-bin-path)" && \
		install -m 0755 "$$bin/streamd" "$$bin/streamctl" "$(BINDIR)/"
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/streamd.service > "$(UNITDIR)/streamd.service"
	chmod 0644 "$(UNITDIR)/streamd.service"
	install -m 0644 systemd/streamd.socket "$(UNITDIR)/streamd.socket"
	@if [ -e "$(CONFIG_FILE)" ]; then \
		echo "keeping the existing $(CONFIG_FILE)"; \
	else \
		install -D -m 0600 Config/streamd.toml "$(CONFIG_FILE)"; \
	fi
	-@systemctl --user daemon-reload 2>/dev/null || true
	@echo "installed; enable with: systemctl --user enable --now streamd.socket"

uninstall:
	-@systemctl --user disable --now streamd.socket streamd.service 2>/dev/null || true
	rm -f "$(BINDIR)/streamd" "$(BINDIR)/streamctl" "$(UNITDIR)/streamd.service" "$(UNITDIR)/streamd.socket"
	-@systemctl --user daemon-reload 2>/dev/null || true
	@echo "removed; the configuration $(CONFIG_FILE) and the state directory are kept"

verify:
	@out="$$(XDG_RUNTIME_DIR="$${XDG_RUNTIME_DIR:-/run/user/$$(id -u)}" systemd-analyze --user verify "$(UNITDIR)/streamd.socket" "$(UNITDIR)/streamd.service" 2>&1)"; \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi
