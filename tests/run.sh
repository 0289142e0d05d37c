#!/usr/bin/env bash
# The test command of hap-bridge: on a fresh Debian machine it installs what the tests need
# (Debian packages, cargo-fuzz, a Python venv with aiohomekit) and then runs every check:
# rustfmt, clippy (which also type-checks the benches), unit + integration + doc tests, the
# sans-IO boundary, docs, and a short smoke
# run of every fuzz target on its checked-in corpus. `.ci/run` calls exactly this script.
#
#   bash tests/run.sh            # everything
#   FUZZ_SECONDS=60 bash tests/run.sh   # longer fuzz smoke runs
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# On CI (a fresh clone, built once): no incremental cache and only line tables for debug info.
# A fresh clone's build then takes ~2.3 GB of disk instead of ~4.6 GB; an earlier CI run died in
# the linker (SIGBUS) when its disk filled up. Local runs keep cargo's defaults.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
fi

step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A build with every test, the benches' type-check and the fuzz targets needs a few GB of disk;
# say so up front rather than fail later in the linker.
avail_kb=$(df -Pk . | awk 'NR==2 {print $4}')
echo "disk: $((avail_kb / 1024 / 1024)) GB free in $ROOT"
if [ "${avail_kb:-0}" -lt $((4 * 1024 * 1024)) ]; then
  echo "warning: less than 4 GB free; the build may fail with 'No space left on device' or a linker SIGBUS" >&2
fi

# ---- 1. System packages (Debian) ------------------------------------------------------------
# ffmpeg: independent SRTP receiver and H.264/Opus decoder; nasm: openh264's assembly (without it
# encoding is ~2.5x slower); cmake: builds the bundled libopus (camera audio); GStreamer's RTSP server: the real camera in tests; iproute2 and
# util-linux: private network namespaces for the mDNS tests; chromium: the web page test
# (headless; tests/e2e/page.rs).
APT_PACKAGES=(ffmpeg nasm cmake gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad iproute2 util-linux python3-venv chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. Rust tools ----------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

# ---- 2b. Python venv for the interop tests ---------------------------------------------------
# tests/e2e/interop.rs drives the bridge with aiohomekit (Home Assistant's HomeKit controller)
# from .venv; python3-venv (above) provides ensurepip for Debian's python3.
if ! .venv/bin/python -c 'import aiohomekit' >/dev/null 2>&1; then
  step "python venv with aiohomekit (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install -q 'aiohomekit>=4,<5'
fi

# ---- 3. Checks ---------------------------------------------------------------------------------
step "rustfmt"
cargo fmt --all --check
cargo fmt --all --check --manifest-path fuzz/Cargo.toml

step "clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo clippy -p media --no-default-features --locked -- -D warnings
cargo clippy -p hap-proto --no-default-features --locked -- -D warnings

step "sans-IO boundary: hap-proto must not depend on an async runtime"
if cargo tree -p hap-proto -e normal --prefix none --all-features --locked \
  | grep -E '^(tokio|futures|mio|async-|smol)'; then
  echo "hap-proto depends on an async runtime (see above)" >&2
  exit 1
fi
if cargo tree -p media --no-default-features -e normal --prefix none --locked \
  | grep -E '^(tokio|futures|mio|async-|retina|openh264)'; then
  echo "media's pure modules depend on the runtime (see above)" >&2
  exit 1
fi

step "module layering: no import cycle between the modules of any crate"
python3 tests/import_cycles.py

step "sans-IO boundary: media names nothing of HomeKit"
# HAP names as words (underscores and dashes separate words, so `from_hap` and `HAP-python`
# count), comments included; the product name `hap-bridge` is not a HAP name. The HAP wire
# values of media's parameters are mapped in src/camera/negotiate.rs only.
if grep -rnP '(?i)(?<![a-z0-9])(hap(?!-bridge)|homekit|aid|iid|tlv8?)(?![a-z0-9])' media/src; then
  echo "media names HomeKit (see above): map HAP values in src/camera/negotiate.rs" >&2
  exit 1
fi

step "unit, integration and doc tests"
cargo test --workspace --all-features --locked --no-fail-fast

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked --quiet

step "fuzz smoke: every target replays its corpus and runs ${FUZZ_SECONDS}s"
(
  cd fuzz
  cargo fuzz build -s none --release
  for t in $(cargo fuzz list); do
    mkdir -p "corpus/$t"
    work=$(mktemp -d)
    cp -r "corpus/$t/." "$work/" 2>/dev/null || true
    log=$(mktemp)
    if ! cargo fuzz run -s none --release "$t" "$work" -- -max_total_time="$FUZZ_SECONDS" \
      -print_final_stats=1 >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz target $t FAILED" >&2
      exit 1
    fi
    echo "fuzz target $t: $(grep -E '^stat::number_of_executed_units' "$log" | tr -d ' ') ok"
    rm -f "$log"
    rm -rf "$work"
  done
)

step "all checks passed"
