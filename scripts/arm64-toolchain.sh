#!/usr/bin/env bash
# The toolchain for the arm64 function (aarch64-unknown-linux-gnu, what
# `sam build` builds by default) and the emulator that runs it here.
#
#   scripts/arm64-toolchain.sh build   prints the environment (NAME=VALUE words)
#                                      `cargo lambda build --arm64` needs
#   scripts/arm64-toolchain.sh run     prints the command prefix that runs an
#                                      aarch64 binary on this machine
#
# Build: rustup's aarch64-unknown-linux-gnu target where it is installed
# (nothing to add: cargo-lambda links with Zig); otherwise Debian's rustc
# (rustc-web, from bookworm-security) with its aarch64 standard library
# (libstd-rust-web-dev:arm64, Multi-Arch: same), through RUSTC=/usr/bin/rustc.
# cargo-lambda still links with Zig; its rustup target check is skipped, as
# rustup cannot add a target to a rustc it does not manage.
# Run: qemu-user's qemu-aarch64, with the aarch64 C library of
# libc6-arm64-cross as its sysroot (-L), unless this machine is aarch64.
#
# What is missing is installed with apt-get when it can be (root, apt-get
# present), with one line on stderr saying what; otherwise the script stops
# with an error naming the missing piece and how to get it. Never a silent skip.
set -euo pipefail

TRIPLE=aarch64-unknown-linux-gnu
DEBIAN_RUSTC=/usr/bin/rustc
SYSROOT=/usr/aarch64-linux-gnu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The oldest rustc the crate builds with (Cargo.toml's rust-version).
NEED=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")
DEBIAN_BUILD_PACKAGES="rustc-web libstd-rust-web-dev:arm64"
RUN_PACKAGES="qemu-user libc6-arm64-cross libgcc-s1-arm64-cross"
DEBIAN_ROUTE="as root on Debian 12: dpkg --add-architecture arm64 && apt-get update && apt-get install rustc-web libstd-rust-web-dev:arm64"

say() { echo "arm64-toolchain: $*" >&2; }
fail() { say "$*"; exit 1; }

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; }

apt_install() { # $1: what for (one line), then the packages
    local why=$1
    shift
    say "installing $* with apt-get ($why)"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 \
                --no-install-recommends "$@"
    } > /tmp/arm64-toolchain-apt.$$ 2>&1 || {
        cat /tmp/arm64-toolchain-apt.$$ >&2
        rm -f /tmp/arm64-toolchain-apt.$$
        fail "apt-get install $* failed"
    }
    rm -f /tmp/arm64-toolchain-apt.$$
}

version_at_least() { # $1 >= $2, both x.y[.z]
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

rustup_has_target() {
    command -v rustup > /dev/null && rustup target list --installed 2> /dev/null | grep -qx "$TRIPLE"
}

# rustc outside make's jobserver: under `make -j` it would warn that it
# cannot reach the jobserver MAKEFLAGS names.
debian_rustc() { env -u MAKEFLAGS -u MFLAGS -u CARGO_MAKEFLAGS "$DEBIAN_RUSTC" "$@"; }

debian_rustc_ready() {
    [ -x "$DEBIAN_RUSTC" ] || return 1
    local version
    version=$(debian_rustc --version | awk '{print $2}')
    version_at_least "${version%%[-+]*}" "$NEED" || return 1
    compgen -G "$(debian_rustc --print sysroot)/lib/rustlib/$TRIPLE/lib/libstd-*.rlib" > /dev/null
}

build_env() {
    if rustup_has_target; then
        return 0 # rustup's toolchain, as `sam build` uses it: nothing to add
    fi
    if ! debian_rustc_ready; then
        can_install || fail "no Rust standard library for $TRIPLE (rustc >= $NEED): \
run \`rustup target add $TRIPLE\`, or $DEBIAN_ROUTE"
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            dpkg --add-architecture arm64
        fi
        apt_install "rustup has no $TRIPLE target: Debian's rustc and its aarch64 standard library" \
            $DEBIAN_BUILD_PACKAGES
        debian_rustc_ready || fail "$DEBIAN_RUSTC after apt-get: $(debian_rustc --version 2>&1) \
has no $TRIPLE standard library or is older than $NEED (apt-cache policy rustc-web: the version comes \
from bookworm-security)"
    fi
    echo "RUSTC=$DEBIAN_RUSTC CARGO_LAMBDA_BUILD.SKIP_TARGET_CHECK=true"
}

runner() {
    case "$(uname -m)" in aarch64 | arm64)
        return 0 ;;
    esac
    if ! command -v qemu-aarch64 > /dev/null || [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] \
        || [ ! -e "$SYSROOT/lib/libgcc_s.so.1" ]; then
        can_install || fail "cannot run aarch64 binaries here: needs qemu-aarch64 (package qemu-user) \
and the aarch64 C library in $SYSROOT (libc6-arm64-cross, libgcc-s1-arm64-cross): \
apt-get install $RUN_PACKAGES"
        apt_install "to run the arm64 function under emulation" $RUN_PACKAGES
    fi
    echo "$(command -v qemu-aarch64) -L $SYSROOT"
}

case "${1:-}" in
build) build_env ;;
run) runner ;;
*) fail "usage: $0 build|run" ;;
esac
