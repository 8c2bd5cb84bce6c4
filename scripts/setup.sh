#!/usr/bin/env bash
# Installs everything zarr-wavfs needs to build, test and run its demo on Debian 12:
# system packages (apt), Rust (rustup, only if cargo is missing), the S3-compatible test
# server s3s-fs (cargo install, into a cache outside the clone) and the Python packages
# of the zarr-python interop check (pip). Idempotent: what is already there is skipped,
# so a second run takes seconds. Run as root (or as a user with sudo).
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "not root and no sudo: cannot install system packages" >&2
        exit 1
    fi
fi

# --- system packages -------------------------------------------------------------------
# cmake builds the bundled libopus (audiopus_sys, static) and libFLAC (libflac-sys, static);
# no system libopus or libFLAC is used.
# nginx-light is the HTTP server of the tests (tests/common/servers.rs runs its own
# instances from /usr/sbin/nginx on free ports; Debian's nginx service is not needed).
# The benchmark's peers and links (scripts/bench.sh, scripts/bench/remote.sh): ffmpegfs,
# rclone and s3fs (the stacks a user runs today), iproute2 (the network namespace of the
# 20 ms link) and iputils-ping (its round trip). chromium is the browser of
# tests/browser.rs, driven by Playwright for Python through executable_path (Playwright's
# own browser downloads are never used: `playwright install` is not run); wrk is the load
# generator of scripts/bench/serve_load.sh.
APT_PACKAGES=(
    build-essential pkg-config cmake curl ca-certificates
    fuse3 libfuse3-dev
    opus-tools sox ffmpeg flac
    python3 python3-pip git
    nginx-light
    ffmpegfs rclone s3fs iproute2 iputils-ping
    chromium wrk
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        :
    else
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    log "apt: all ${#APT_PACKAGES[@]} packages already installed"
else
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Rust --------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v cargo >/dev/null 2>&1; then
    log "rust: $(cargo --version) already installed"
else
    log "rust: cargo not found, installing the stable toolchain with rustup"
    curl https://sh.rustup.rs -sSf | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
    log "rust: installed $(cargo --version)"
fi
# The crate uses edition 2024, which needs Rust 1.85 or later.
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 85 ] 2>/dev/null; then
    if command -v rustup >/dev/null 2>&1; then
        log "rust: $(rustc --version) is too old (need >= 1.85), running rustup update stable"
        rustup update stable
        rustup default stable
    else
        log "rust: $(rustc --version) is too old (need >= 1.85) and rustup is not available" >&2
        exit 1
    fi
fi

# --- s3s-fs (the S3 server of the tests, tests/common/servers.rs) ----------------------
# Built once into a cache outside the clone and reused; the tests find it there (or at
# $ZARR_WAVFS_S3S_FS).
CACHE="${ZARR_WAVFS_CACHE:-/var/cache/zarr-wavfs}"
S3S_FS_VERSION=0.14.1
S3S_FS_ROOT="$CACHE/s3s-fs-$S3S_FS_VERSION"
if [ -x "$S3S_FS_ROOT/bin/s3s-fs" ]; then
    log "s3s-fs: $S3S_FS_VERSION already installed in $S3S_FS_ROOT"
else
    log "s3s-fs: installing $S3S_FS_VERSION into $S3S_FS_ROOT (cargo install, takes minutes)"
    if [ -n "$SUDO" ]; then
        # cargo runs as this user (its toolchain); only the cache directory needs root
        $SUDO mkdir -p "$S3S_FS_ROOT"
        $SUDO chown "$(id -u):$(id -g)" "$S3S_FS_ROOT"
    fi
    cargo install "s3s-fs@$S3S_FS_VERSION" --locked --features binary --root "$S3S_FS_ROOT"
    log "s3s-fs: installed $("$S3S_FS_ROOT/bin/s3s-fs" --version 2>/dev/null || echo "$S3S_FS_ROOT/bin/s3s-fs")"
fi

# --- Python packages (tests/interop/zarr_python_check.py; guano: tests/chunks.rs; moto's
# S3 server, which enforces conditional writes: tests/live.rs, tests/conditional_writes.rs)
PY=python3
if $PY - <<'EOF' 2>/dev/null && command -v moto_server >/dev/null; then
import sys
import zarr, numpy, soundfile, scipy, guano, moto
sys.exit(0 if int(zarr.__version__.split(".")[0]) >= 3 else 1)
EOF
    log "pip: zarr $($PY -c 'import zarr; print(zarr.__version__)'), numpy, soundfile, scipy, guano, moto already installed"
else
    log "pip: installing zarr>=3 numpy soundfile scipy guano moto[server] for $($PY --version)"
    PIP_PACKAGES=("zarr>=3" numpy soundfile scipy guano "moto[server]")
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
    if ! $PY -m pip install -q "${PIP_PACKAGES[@]}"; then
        # Debian's own python3 is "externally managed" (PEP 668).
        log "pip: plain install refused, retrying with --break-system-packages"
        $PY -m pip install -q --break-system-packages "${PIP_PACKAGES[@]}"
    fi
    log "pip: zarr $($PY -c 'import zarr; print(zarr.__version__)') installed"
fi

# --- Playwright for Python (tests/browser.rs) ------------------------------------------
if python3 -c 'import playwright.sync_api' 2>/dev/null; then
    log "serve: playwright $(python3 -c 'import importlib.metadata as m; print(m.version("playwright"))') already installed"
else
    log "serve: pip installing playwright (the Python package only, no browser download)"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
    python3 -m pip install -q playwright ||
        python3 -m pip install -q --break-system-packages playwright
fi

log "done"
