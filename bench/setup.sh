#!/usr/bin/env bash
# Installs the benchmark's tools from Debian when missing: nginx (the upstream), its echo module (only
# for --upstream-delay-ms) and wrk (the load generator). Needs root, as apt does.
set -euo pipefail
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need+=(libnginx-mod-http-echo)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "bench needs ${need[*]}: run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
echo "installing ${need[*]} from Debian ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
