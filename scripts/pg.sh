#!/usr/bin/env bash
# Private PostgreSQL cluster helpers; source this file.
#   pg_start DIR   initialises (if needed) and starts a cluster in DIR on a free loopback port,
#                  and exports PG_URL (superuser, trust auth on loopback only) and PG_DIR.
#                  Only the superuser `postgres` is trusted; every other role must give its
#                  password (scram-sha-256), so tests can show that a rotated password stops
#                  working.
#                  PG_EXTRA_OPTS adds server options (`-c name=value ...`).
#   pg_stop DIR    stops it.
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user.

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$d" ]; then
    echo "PostgreSQL server binaries not found under /usr/lib/postgresql; install the postgresql package" >&2
    return 1
  fi
  echo "$d"
}

pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_start() {
  local dir=$1 bin port
  bin=$(pg_bindir) || return 1
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; return 1; }
    printf '%s\n' \
      'local all postgres trust' \
      'host  all postgres 127.0.0.1/32 trust' \
      'local all all scram-sha-256' \
      'host  all all 127.0.0.1/32 scram-sha-256' \
      | pg_as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  fi
  port=$(pg_free_port)
  pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${PG_EXTRA_OPTS:-}" \
    start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
  export PG_DIR=$dir
  export PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_stop() {
  local dir=$1 bin
  bin=$(pg_bindir) || return 0
  [ -f "$dir/data/postmaster.pid" ] && pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# PgBouncer in transaction pooling mode in front of the cluster of pg_start (README "PgBouncer").
#   pgb_start DIR  starts it on a free loopback port with a deliberately small server pool (so
#                  that clients really share server connections) and exports PGB_URL (the
#                  postgres superuser, database `postgres`; any database name is forwarded).
#   pgb_stop DIR   stops it.
pgb_start() {
  local dir=$1 port pgport
  command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed; run scripts/install-deps.sh" >&2; return 1; }
  pgport=$(echo "$PG_URL" | sed -E 's|.*:([0-9]+)/.*|\1|')
  mkdir -p "$dir"
  port=$(pg_free_port)
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pgport
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = ${PGB_POOL_SIZE:-4}
max_client_conn = 2000
max_db_connections = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
  if [ "$(id -u)" = 0 ]; then
    pgbouncer -d -u postgres "$dir/pgbouncer.ini" || { cat "$dir/pgbouncer.log" >&2; return 1; }
  else
    pgbouncer -d "$dir/pgbouncer.ini" || { cat "$dir/pgbouncer.log" >&2; return 1; }
  fi
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  export PGB_DIR=$dir
  export PGB_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pgb_stop() {
  local dir=$1
  [ -f "$dir/pgbouncer.pid" ] && kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null
  return 0
}
