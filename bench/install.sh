#!/bin/sh
# Installs the programs `npm run bench` drives (Debian 12 / Ubuntu; run as root):
#   postfix            smtp-source (load generator for W1/W2) and smtp-sink (the backend)
#   haproxy            contender (TCP mode)
#   nginx-light        contender (mail proxy) ...
#   libnginx-mod-mail  ... whose mail module Debian ships separately
#   strace             system calls per session (W1; optional)
# The harness itself installs nothing; it only checks these are present.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y postfix haproxy nginx-light libnginx-mod-mail strace
