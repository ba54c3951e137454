#!/usr/bin/env bash
# Install the system packages the course needs, only those that are missing: Redis and
# RabbitMQ (Debian/Ubuntu packages), Java 17 and Maven (to fetch and run Kafka's own jars),
# python3-venv, openssl (classroom mode's certificates); with WITH_BROWSER=1 Chromium (the browser test), with WITH_NEXT=1 debootstrap
# (`make test-next`). As root it runs apt-get; with passwordless sudo it uses sudo; otherwise it
# prints the exact command to run and fails.
#
# It checks the versions it gets, before installing (apt's candidate) and after:
#   Redis    >= 6.2  LMOVE (02.01) and XAUTOCLAIM (02.03) are 6.2 commands
#   RabbitMQ >= 3.8  quorum queues (01.x, module 04) came in 3.8
# Debian 12 (Redis 7.0, RabbitMQ 3.10) and Ubuntu 24.04 (7.0, 3.12) pass; Ubuntu 22.04 and
# Debian 11 ship Redis 6.0 and are told what to do instead.
#
# Quiet: one line per step. apt's own output goes to a log file (artifacts/install-system.log,
# or $BROKERLAB_INSTALL_LOG), which the error message names when something fails.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
log="${BROKERLAB_INSTALL_LOG:-${root}/artifacts/install-system.log}"
REDIS_MIN=6.2
RABBITMQ_MIN=3.8

# --------------------------------------------------------------------------- helpers

distro() { (. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-this system}") || echo "this system"; }
distro_id() { (. /etc/os-release 2>/dev/null && echo "${ID:-}") || true; }
# 5:7.0.15-1~deb12u1 -> 7.0.15 (drop the epoch and the distribution's revision)
upstream() { local v="${1#*:}"; echo "${v%%-*}"; }
at_least() { dpkg --compare-versions "$(upstream "$1")" ge "$2"; }
# The version apt would install ("" when apt knows no such package).
candidate() {
  local v
  v="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -1)"
  [ "${v}" = "(none)" ] && v=""
  echo "${v}"
}
installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
redis_version() { redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9.]*\).*/\1/p'; }

too_old() {  # too_old BROKER VERSION
  local broker="$1" version="$2"
  {
    echo
    if [ "${broker}" = redis ]; then
      echo "Redis $(upstream "${version}") from $(distro) is too old: the course needs Redis >= ${REDIS_MIN}"
      echo "(LMOVE in 02.01, XAUTOCLAIM in 02.03). Ubuntu 22.04 and Debian 11 ship Redis 6.0."
      echo "Instead, either"
      echo "  - install Redis from Redis's own APT repository (https://github.com/redis/redis-debian):"
      echo "      sudo apt-get install -y lsb-release curl gpg"
      echo "      curl -fsSL https://packages.redis.io/gpg | sudo gpg --dearmor -o /usr/share/keyrings/redis-archive-keyring.gpg"
      echo "      echo \"deb [signed-by=/usr/share/keyrings/redis-archive-keyring.gpg] https://packages.redis.io/deb \$(lsb_release -cs) main\" | sudo tee /etc/apt/sources.list.d/redis.list"
      echo "      sudo apt-get update && sudo apt-get install -y redis"
      echo "    and run the make command again;"
    else
      echo "RabbitMQ $(upstream "${version}") from $(distro) is too old: the course needs RabbitMQ >= ${RABBITMQ_MIN}"
      echo "(quorum queues). Instead, either"
      echo "  - install RabbitMQ from Team RabbitMQ's APT repositories:"
      echo "      https://www.rabbitmq.com/docs/install-debian"
      echo "    and run the make command again;"
    fi
    echo "  - or run the brokers with Docker and use them from here:"
    echo "      docker compose up -d --wait rabbitmq redis kafka"
    echo "      make lab BROKERS=external"
  } >&2
  exit 1
}

check_versions() {  # after installing: what is on the machine now
  local redis rabbit
  redis="$(redis_version)"
  if [ -n "${redis}" ] && ! at_least "${redis}" "${REDIS_MIN}"; then too_old redis "${redis}"; fi
  rabbit="$(installed_version rabbitmq-server)"
  if [ -n "${rabbit}" ] && ! at_least "${rabbit}" "${RABBITMQ_MIN}"; then too_old rabbitmq "${rabbit}"; fi
  echo "system packages: Redis ${redis:-?}, RabbitMQ $(upstream "${rabbit:-?}"), Java ${java_major:-?} (needs Redis >= ${REDIS_MIN}, RabbitMQ >= ${RABBITMQ_MIN})"
}

check_candidates() {  # before installing: what apt would bring
  local v
  for package in "${missing[@]}"; do
    case "${package}" in
      redis-server) v="$(candidate redis-server)"
        if [ -n "${v}" ] && ! at_least "${v}" "${REDIS_MIN}"; then too_old redis "${v}"; fi ;;
      rabbitmq-server) v="$(candidate rabbitmq-server)"
        if [ -n "${v}" ] && ! at_least "${v}" "${RABBITMQ_MIN}"; then too_old rabbitmq "${v}"; fi ;;
    esac
  done
}

run_logged() {  # run_logged STEP COMMAND...: output to the log; on failure say where it is
  echo "== $(date -u +%FT%TZ) $*" >> "${log}"
  if ! "$@" >> "${log}" 2>&1; then
    echo "system packages: '$*' failed; the full log is ${log}:" >&2
    tail -n 15 "${log}" >&2
    exit 1
  fi
}

# --------------------------------------------------------------------------- what is missing

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1 || true)
if [ -z "${java_major}" ] || [ "${java_major}" -lt 17 ]; then missing+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# classroom mode makes its CA and certificates with the openssl command
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${WITH_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(distro_id)" = ubuntu ]; then
    # Ubuntu's chromium package only installs the snap, which Playwright does not drive reliably.
    echo "system packages: no Chromium; on Ubuntu see \`make browser-test\` for how to get one"
  else
    missing+=(chromium)
  fi
fi

# `make test-next` (and `make test`) runs Debian 13's brokers from a debootstrapped root.
if [ "${WITH_NEXT:-0}" = 1 ] && ! command -v debootstrap >/dev/null 2>&1; then
  missing+=(debootstrap)
fi

if [ ${#missing[@]} -eq 0 ]; then
  check_versions
  exit 0
fi

echo "system packages: missing ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  check_candidates  # with the lists apt has now: say "too old" before asking for sudo
  echo "Install them with:"
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  echo "then run the make command again."
  exit 1
fi

mkdir -p "$(dirname "${log}")"
: > "${log}"
export DEBIAN_FRONTEND=noninteractive
echo "system packages: apt-get update (log: ${log})"
run_logged ${SUDO} apt-get update
check_candidates
echo "system packages: installing ${missing[*]} (log: ${log})"
run_logged ${SUDO} apt-get install -y --no-install-recommends "${missing[@]}"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1 || true)
check_versions
