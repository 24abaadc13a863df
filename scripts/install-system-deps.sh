#!/usr/bin/env bash
# Debian packages `make demo`, the test suite and benchmarks need: a private MariaDB server
# (migrate and Barbican backup tests on a real MySQL-compatible database), memcached (Swift's
# tempauth, also in the demo's Swift step), openssl, cryptsetup (LUKS header checks of migrate
# verify --luks), softhsm2 (a private PKCS#11 token for Barbican's p11_crypto plugin: sandbox
# --with hsm, the barbican store tests), the venv module of $PYTHON (python3 -m venv: python3-venv
# on Debian), and for the Ansible fleet tests sshd (openssh-server: one private sshd per network
# namespace) and ip (iproute2).
# Installs only what is missing; needs root (as on CI and the developers' machines).
set -eu
need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb-dump >/dev/null 2>&1 || command -v mysqldump >/dev/null 2>&1 || need+=(mariadb-client)
command -v memcached >/dev/null 2>&1 || [ -x /usr/bin/memcached ] || need+=(memcached)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v cryptsetup >/dev/null 2>&1 || [ -x /usr/sbin/cryptsetup ] || need+=(cryptsetup-bin)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v softhsm2-util >/dev/null 2>&1 || [ -x /usr/bin/softhsm2-util ] || need+=(softhsm2)
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
    need+=("$(basename "$python")" "$(basename "$python")-venv")
elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need+=("$(basename "$python")-venv")
fi
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: missing ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
    exit 1
fi
echo "install-system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# No system services are started: the tests start private servers on loopback.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
rm -f /usr/sbin/policy-rc.d
