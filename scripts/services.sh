#!/usr/bin/env bash
# Start the local services the tests use (PostgreSQL, MariaDB, RabbitMQ) when they are not running.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    port_open "$port" && { echo "services: $name is up on $port"; return 0; }
    sleep 1
  done
  echo "services: $name did not come up on port $port" >&2
  return 1
}

if ! port_open 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  wait_port PostgreSQL 5432
fi
if ! port_open 3306; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_port MariaDB 3306
fi
if ! port_open 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_port RabbitMQ 5672
fi
port_open 5432 && port_open 3306 && port_open 5672
