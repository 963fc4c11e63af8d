#!/usr/bin/env bash
# Prepares everything the integration tests need. Idempotent; callable from any
# working directory. Prints one line per step on success.
#
#   1. kinesis-local (npm, pinned in test/kinesis-local/package-lock.json) and dynalite
#      (npm, pinned in test/dynamodb-local/package-lock.json)
#   2. .tools/bin/goplugin-host (Go; launches the plugin through hashicorp/go-plugin
#      exactly like Conduit v0.19.0 does)
#   3. .tools/bin/conduit v0.19.0 and .tools/bin/conduit-connector-kinesis-go (the Go
#      connector v0.2.0, for the benchmark comparison); best effort: skipped with one line
#      on stderr when the Go module proxy does not serve them)
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd -- "${script_dir}/.." && pwd -P)"
tools_bin="${repo_root}/.tools/bin"
conduit_version="v0.19.0"

export AWS_EC2_METADATA_DISABLED=true
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"
}

need node "needed to run kinesis-local"
need npm "needed to install kinesis-local"
need go "needed to build test/goplugin-host"
need openssl "needed by the tests to make a TLS certificate for kinesis-local"

mkdir -p "${tools_bin}"

# --- 1. kinesis-local --------------------------------------------------------
kl_dir="${repo_root}/test/kinesis-local"
kl_pkg="${kl_dir}/node_modules/kinesis-local/package.json"
want_kl="$(node -e 'process.stdout.write(require(process.argv[1]).dependencies["kinesis-local"])' "${kl_dir}/package.json")"

# npm_install DIR CHECK_FILE NAME: runs `npm ci` in DIR unless DIR/node_modules holds an install
# of exactly DIR/package-lock.json (a copy is kept beside it as the stamp; contents are compared,
# not mtimes, which a fresh clone or worktree sets to the checkout time). A node_modules that is
# a symlink (a worktree sharing another checkout's install) is never reinstalled through: that
# would replace the other checkout's install.
npm_install() {
  local dir="$1" check="$2" name="$3"
  local stamp="${dir}/node_modules/.installed-package-lock.json"
  if [[ -f "${dir}/node_modules/${check}" && -f "${stamp}" ]] \
      && cmp -s "${dir}/package-lock.json" "${stamp}"; then
    say "${name} up to date"
    return
  fi
  if [[ -L "${dir}/node_modules" ]]; then
    die "${dir}/node_modules is a symlink to another checkout's install, which does not match ${dir}/package-lock.json: run test/setup.sh in that checkout, or replace the symlink"
  fi
  local npm_out
  if ! npm_out="$(cd "${dir}" && npm ci --no-audit --no-fund --loglevel=error 2>&1)"; then
    printf '%s\n' "${npm_out}" >&2
    die "npm ci in ${dir#"${repo_root}/"} failed"
  fi
  cp "${dir}/package-lock.json" "${stamp}"
  say "${name} installed (npm ci in ${dir#"${repo_root}/"})"
}

npm_install "${kl_dir}" kinesis-local/package.json "kinesis-local ${want_kl}"
have_kl="$(node -e 'process.stdout.write(require(process.argv[1]).version)' "${kl_pkg}")"
[[ "${have_kl}" == "${want_kl}" ]] || die "test/kinesis-local has kinesis-local ${have_kl} installed, package.json wants ${want_kl}: update package-lock.json"

# --- 1b. dynalite (DynamoDB-compatible, for the lease coordination tests) -----
# npm, pinned in test/dynamodb-local/package-lock.json; reinstalled when the lock changes.
dl_dir="${repo_root}/test/dynamodb-local"
npm_install "${dl_dir}" dynalite/cli.js dynalite

# --- 2. goplugin-host --------------------------------------------------------
host_dir="${repo_root}/test/goplugin-host"
host_bin="${tools_bin}/goplugin-host"

host_stale=0
if [[ ! -x "${host_bin}" ]]; then
  host_stale=1
elif [[ -n "$(find "${host_dir}" -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "${host_bin}" -print -quit)" ]]; then
  host_stale=1
fi

if [[ "${host_stale}" == 1 ]]; then
  if ! go_out="$(cd "${host_dir}" && go build -mod=readonly -o "${host_bin}.tmp" . 2>&1)"; then
    printf '%s\n' "${go_out}" >&2
    rm -f "${host_bin}.tmp"
    die "building test/goplugin-host failed"
  fi
  mv -f "${host_bin}.tmp" "${host_bin}"
  say "goplugin-host built (.tools/bin/goplugin-host)"
else
  say "goplugin-host up to date"
fi

# --- 3. conduit and the Go connector (best effort) ----------------------------
# go install MODULE@VERSION into .tools/bin/NAME; on failure one line on stderr and go on.
go_install_best_effort() {
  local package="$1" version="$2" name="$3" purpose="$4"
  local target="${tools_bin}/${name}"
  if [[ -x "${target}" ]]; then
    say "${name} present (.tools/bin/${name})"
    return
  fi
  local gobin
  gobin="$(mktemp -d)"
  local install_cmd=(go install "${package}@${version}")
  if command -v timeout >/dev/null 2>&1; then
    install_cmd=(timeout 900 "${install_cmd[@]}")
  fi
  local out rc=0
  out="$(GOBIN="${gobin}" GOFLAGS= "${install_cmd[@]}" 2>&1)" || rc=$?
  if [[ "${rc}" == 0 ]]; then
    mv -f "${gobin}/$(basename "${package}")" "${target}"
    say "${name} ${version} installed (.tools/bin/${name})"
  else
    # go prints e.g. "go: <mod>@<ver>: reading <url>: 403 Forbidden" plus an
    # indented "server response: ..." line; fold that into one line.
    local reason
    reason="$(printf '%s\n' "${out}" | sed -e 's/^[[:space:]]*//' -e '/^$/d' | tail -n 5 | paste -sd ';' - | sed -e 's/;/; /g')"
    [[ -n "${reason}" ]] || reason="go install exited with status ${rc}"
    [[ "${rc}" != 124 ]] || reason="go install timed out"
    printf '%s %s could not be installed from the Go module proxy: %s; %s\n' \
      "${package}" "${version}" "${reason}" "${purpose}" >&2
  fi
  rm -rf "${gobin}"
}

go_install_best_effort "github.com/conduitio/conduit/cmd/conduit" "${conduit_version}" conduit \
  "end-to-end tests with the real Conduit will be skipped"
go_install_best_effort "github.com/conduitio-labs/conduit-connector-kinesis/cmd/connector" v0.2.0 \
  conduit-connector-kinesis-go "the benchmark comparison with the Go connector will be skipped"

# --- 4. KPL aggregation helper (Python venv) ---------------------------------
# tests/deaggregate_kpl.rs aggregates records with PyPI's aws-kinesis-agg (an independent
# implementation of the KPL format) through test/kpl/aggregate.py. Installed into
# .tools/kpl-venv; reinstalled when test/kpl/requirements.txt changes.
need python3 "needed to create the virtualenv for test/kpl/aggregate.py"
kpl_req="${repo_root}/test/kpl/requirements.txt"
kpl_venv="${repo_root}/.tools/kpl-venv"
kpl_stamp="${kpl_venv}/.installed-requirements.txt"

if [[ -x "${kpl_venv}/bin/python" && -f "${kpl_stamp}" ]] && cmp -s "${kpl_req}" "${kpl_stamp}" \
  && "${kpl_venv}/bin/python" -c 'import aws_kinesis_agg.aggregator' >/dev/null 2>&1; then
  say "kpl venv up to date (.tools/kpl-venv)"
else
  rm -rf "${kpl_venv}"
  if ! venv_out="$(python3 -m venv "${kpl_venv}" 2>&1)"; then
    printf '%s\n' "${venv_out}" >&2
    die "python3 -m venv .tools/kpl-venv failed (is the python3 venv module installed?)"
  fi
  if ! pip_out="$("${kpl_venv}/bin/python" -m pip install --disable-pip-version-check --quiet -r "${kpl_req}" 2>&1)"; then
    printf '%s\n' "${pip_out}" >&2
    die "pip install -r test/kpl/requirements.txt failed"
  fi
  cp "${kpl_req}" "${kpl_stamp}"
  say "kpl venv installed (.tools/kpl-venv from test/kpl/requirements.txt)"
fi
