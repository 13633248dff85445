#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and MariaDB
# (127.0.0.1:3306, root without password, database `test`) answer. On the development and CI
# machines they already run; elsewhere this installs Debian's packages and starts them.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
my_up() { mariadb -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1 || mysql -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
wait_for() { for _ in $(seq 60); do "$1" && return 0; sleep 1; done; echo "$2 did not come up" >&2; return 1; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  conf=/etc/postgresql/$version/main
  if ! grep -q 'kondate-ci' "$conf/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust # kondate-ci\nlocal all all trust # kondate-ci' "$conf/pg_hba.conf"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  wait_for pg_up PostgreSQL
fi
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' >/dev/null

if ! my_up; then
  if ! command -v mariadbd >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
  wait_for my_up MariaDB
  mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('')" 2>/dev/null || true
fi
mariadb -h 127.0.0.1 -u root -e 'CREATE DATABASE IF NOT EXISTS test' 2>/dev/null \
  || mysql -h 127.0.0.1 -u root -e 'CREATE DATABASE IF NOT EXISTS test'
echo "PostgreSQL and MariaDB are up"
