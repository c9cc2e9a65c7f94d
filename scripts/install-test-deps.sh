#!/usr/bin/env bash
# Installs the Debian packages the tests need (compilers for the custom-runtime examples, the
# build tools of npm's aws-lambda-ric, a JDK, curl, and User-Mode Linux, a kernel with only
# cgroup v2 for the sandboxes' v2 limits), asking apt only for what is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have go || need+=(golang-go)
have gcc || need+=(gcc)
[ -e /usr/include/stdio.h ] || need+=(libc6-dev)
have rustc || [ -x "$HOME/.cargo/bin/rustc" ] || need+=(rustc)
have autoreconf || need+=(autoconf automake)
have libtoolize || need+=(libtool)
have make || need+=(make)
have cmake || need+=(cmake)
have g++ || need+=(g++)
have curl || need+=(curl)
have javac || need+=(default-jdk-headless)
have node || need+=(nodejs npm)
have linux.uml || need+=(user-mode-linux)
have ip || need+=(iproute2)

if [ ${#need[@]} -eq 0 ]; then
    echo "test dependencies: all present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
