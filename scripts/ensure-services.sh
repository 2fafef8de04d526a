#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and NATS with JetStream (127.0.0.1:4222) are up: starts them
# when their programs are installed, installs them first (Debian's packages) when they are missing and
# this runs as root with apt, and otherwise says exactly what to install.
set -euo pipefail

can_install() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  echo "installing $* (apt-get install)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

if ! port_open 5432; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && can_install; then
    apt_install postgresql
    # Local connections without a password for the user postgres, as the tests and npm start expect.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n 1)
    [ -n "$hba" ] && sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  else
    echo "PostgreSQL is not running on 127.0.0.1:5432 and is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install postgresql) with trust auth for user postgres on 127.0.0.1, or set TEST_POSTGRES_URL / DATABASE_URL." >&2
    exit 1
  fi
  wait_port 5432 || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi

if ! port_open 4222; then
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && can_install; then
    apt_install nats-server
  fi
  if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then
    echo "starting NATS with JetStream"
    server=$(command -v nats-server || echo /usr/sbin/nats-server)
    store=${NATS_STORE_DIR:-/var/lib/nats-server}
    mkdir -p "$store" 2>/dev/null || store="$PWD/.local/nats"
    mkdir -p "$store"
    if command -v start-stop-daemon >/dev/null 2>&1; then
      start-stop-daemon --start --oknodo --background --exec "$server" -- -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$store/nats-server.log"
    else
      nohup "$server" -a 127.0.0.1 -p 4222 -js -sd "$store" -l "$store/nats-server.log" >/dev/null 2>&1 &
    fi
  else
    echo "NATS is not running on 127.0.0.1:4222 and is not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install nats-server) and it will be started with JetStream, or set NATS_URL / TEST_NATS_URL." >&2
    exit 1
  fi
  wait_port 4222 || { echo "NATS did not come up on 127.0.0.1:4222" >&2; exit 1; }
fi
