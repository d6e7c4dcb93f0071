#!/usr/bin/env bash
# Build local stand-ins for the public base images compose.yaml and the Dockerfile use, from Debian
# packages only, for machines that reach a Debian mirror but no container registry.
#
#   deploy/images/build-stand-ins.sh [--ca-bundle FILE]
#
# It debootstraps Debian bookworm (minbase) from this host's apt sources, imports it as
# fraudops-standin/bookworm, then builds on it:
#   fraudops-standin/python:3.11    for python:3.11-slim  (Debian's python3, 3.11)
#   fraudops-standin/postgres:15    for postgres:16       (Debian bookworm ships PostgreSQL 15; MLflow's
#                                                          and Prefect's migrations run on it)
#   fraudops-standin/redis:7        for redis:7
#   fraudops-standin/nginx:1        for nginx:1.27       (Debian bookworm's nginx 1.22)
# and writes deploy/images/stand-ins.env, which `make docker-check` passes to compose and to the build
# (PYTHON_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, NGINX_IMAGE).
#
# --ca-bundle FILE: a PEM file of extra certificate authorities, for networks whose proxy re-signs
# TLS (a corporate proxy). It is installed into the python stand-in (update-ca-certificates) with
# SSL_CERT_FILE, REQUESTS_CA_BUNDLE and PIP_CERT set, so pip and uv inside image builds trust it.
# Default: the host's /usr/local/share/ca-certificates/*.crt when there are any, else none.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
docker="${DOCKER:-docker}"
suite="${DEBIAN_SUITE:-bookworm}"
ca_bundle=""
if [[ "${1:-}" == "--ca-bundle" ]]; then
  ca_bundle="${2:?--ca-bundle needs a file}"
elif compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  ca_bundle="$(mktemp)"
  cat /usr/local/share/ca-certificates/*.crt >"$ca_bundle"
fi

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

if ! "$docker" image inspect "fraudops-standin/$suite" >/dev/null 2>&1; then
  step "debootstrap $suite (minbase) from this host's apt sources"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}"
  debootstrap --variant=minbase "$suite" "$root" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  # the host's apt configuration (mirrors, proxies, snapshot settings) goes into the image
  mkdir -p "$root/etc/apt/sources.list.d" "$root/etc/apt/apt.conf.d"
  cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
  [[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
  cp /etc/apt/apt.conf.d/* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
  rm -f "$root"/etc/apt/apt.conf.d/*packagekit* "$root"/etc/apt/apt.conf.d/*appstream*
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | "$docker" import - "fraudops-standin/$suite" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
for image in python postgres redis nginx; do
  rm -rf "${ctx:?}"/*
  cp "$here/$image/"* "$ctx/"
  if [[ -n "$ca_bundle" ]]; then cp "$ca_bundle" "$ctx/extra-ca.crt"; else : >"$ctx/extra-ca.crt"; fi
  case "$image" in
    python) tag="fraudops-standin/python:3.11" ;;
    postgres) tag="fraudops-standin/postgres:15" ;;
    redis) tag="fraudops-standin/redis:7" ;;
    nginx) tag="fraudops-standin/nginx:1" ;;
  esac
  step "build $tag"
  "$docker" build -q --build-arg "BASE=fraudops-standin/$suite" -t "$tag" "$ctx" >/dev/null
done

cat >"$here/stand-ins.env" <<ENV
# written by deploy/images/build-stand-ins.sh: local stand-ins for the public base images
PYTHON_IMAGE=fraudops-standin/python:3.11
POSTGRES_IMAGE=fraudops-standin/postgres:15
REDIS_IMAGE=fraudops-standin/redis:7
NGINX_IMAGE=fraudops-standin/nginx:1
ENV
step "done: $here/stand-ins.env"
"$docker" image ls --filter "reference=fraudops-standin/*"
