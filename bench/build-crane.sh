#!/usr/bin/env bash
# Builds go-containerregistry's `crane` from Debian's source package, for
# the benchmark's in-memory peer registry (`crane registry serve`).
#
# Usage: bash bench/build-crane.sh OUTPUT_PATH
#
# Installs Go 1.23 and golang-github-google-go-containerregistry-dev
# (0.14.0 in bookworm-backports) with the Go packages it depends on, then
# builds crane in GOPATH mode (GO111MODULE=off) against those packages,
# with a GOPATH under a temporary directory whose src/ is
# /usr/share/gocode/src. Nothing is downloaded by the go command: GOPROXY
# is off and GOTOOLCHAIN is local. Needs root for apt-get.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTPUT_PATH" >&2
    exit 2
fi
output=$(realpath -m "$1")

# go-containerregistry is packaged only in bookworm-backports, and so is
# Go 1.23. `-t bookworm-backports` lets apt take the Go dependencies from
# backports too, which is how the build below was tested. It also upgrades
# any installed package that backports carries in a newer version.
PACKAGES=(golang-1.23-go golang-github-google-go-containerregistry-dev)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports "${PACKAGES[@]}"

GO=/usr/lib/go-1.23/bin/go
if [[ ! -x $GO ]]; then
    echo "$GO is missing after installing golang-1.23-go" >&2
    exit 1
fi
source_dir=/usr/share/gocode/src/github.com/google/go-containerregistry/cmd/crane
if [[ ! -d $source_dir ]]; then
    echo "$source_dir is missing after installing golang-github-google-go-containerregistry-dev" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/gopath"
ln -s /usr/share/gocode/src "$work/gopath/src"

echo "building crane with $($GO version) into $output"
mkdir -p "$(dirname "$output")"
env GOPATH="$work/gopath" GOCACHE="$work/cache" GO111MODULE=off \
    GOPROXY=off GOTOOLCHAIN=local GOFLAGS= \
    "$GO" build -o "$output" github.com/google/go-containerregistry/cmd/crane

"$output" registry serve --help >/dev/null
echo "built $output"
