#!/usr/bin/env bash
# The restic versions the tests run against; source this file.
#   restic_dir VERSION   prints the directory whose `restic` is restic VERSION (major.minor):
#                        .cache/restic/system-VERSION (a link to the system's restic) when
#                        that is the version, else the copy that restic_fetch keeps in
#                        .cache/restic/VERSION/usr/bin of the repository.
#   restic_fetch VERSION fetches restic VERSION from the Debian suite that ships it (0.14
#                        bookworm, 0.18 trixie, 0.19 sid) on this machine's own Debian mirror,
#                        with `apt-get download` and a private sources list and package lists, so
#                        the system's apt state and its restic stay as they are; then unpacks it
#                        with `dpkg-deb -x`. Done once: the unpacked copy is kept between runs.
RESTIC_CACHE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/restic"

restic_suite() {
  case "$1" in
    0.14) echo bookworm ;;
    0.18) echo trixie ;;
    0.19) echo sid ;;
    *) return 1 ;;
  esac
}

# "0.18.0" from `restic 0.18.0 compiled with go1.24.4 on linux/amd64`.
restic_version_of() {
  "$1" version 2>/dev/null | awk '{print $2}'
}

restic_dir() {
  local v=$1 sys
  sys=$(command -v restic || true)
  if [ -n "$sys" ] && [[ "$(restic_version_of "$sys")" == "$v".* ]]; then
    # A directory of its own, so that putting it first on PATH puts nothing else there.
    mkdir -p "$RESTIC_CACHE/system-$v"
    ln -sfn "$(readlink -f "$sys")" "$RESTIC_CACHE/system-$v/restic"
    echo "$RESTIC_CACHE/system-$v"
  elif [ -x "$RESTIC_CACHE/$v/usr/bin/restic" ]; then
    echo "$RESTIC_CACHE/$v/usr/bin"
  else
    echo "restic $v is not installed; run scripts/install-deps.sh --tests (RESTIC_VERSIONS=\"$v\")" >&2
    return 1
  fi
}

# The Debian mirror the system's own sources name (deb.debian.org when none is found).
restic_mirror() {
  local m
  m=$(grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    head -n 1 | tr -d ' ')
  echo "${m:-http://deb.debian.org/debian}"
}

restic_fetch() {
  local v=$1 suite tmp deb got
  restic_dir "$v" >/dev/null 2>&1 && return 0
  if ! suite=$(restic_suite "$v"); then
    echo "no Debian suite is known to ship restic $v; RESTIC_VERSIONS may name 0.14, 0.18 and 0.19" >&2
    return 1
  fi
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(restic_mirror) $suite main" \
    >"$tmp/sources.list"
  local opts=(-q -o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp" -o "Dir::Cache::archives=$tmp/archives"
    -o Dir::State::status=/dev/null -o Dir::Etc::preferences=/dev/null
    -o Dir::Etc::PreferencesParts=/dev/null -o APT::Sandbox::User=root)
  echo "fetching restic $v from Debian $suite"
  if ! (apt-get "${opts[@]}" update >/dev/null && cd "$tmp" && apt-get "${opts[@]}" download restic >/dev/null); then
    rm -rf "$tmp"
    echo "could not download restic from Debian $suite at $(restic_mirror); check the network and run again" >&2
    return 1
  fi
  deb=$(ls "$tmp"/restic_*.deb)
  rm -rf "$RESTIC_CACHE/$v.new"
  mkdir -p "$RESTIC_CACHE/$v.new"
  dpkg-deb -x "$deb" "$RESTIC_CACHE/$v.new"
  rm -rf "$tmp"
  got=$(restic_version_of "$RESTIC_CACHE/$v.new/usr/bin/restic")
  if [[ "$got" != "$v".* ]]; then
    rm -rf "$RESTIC_CACHE/$v.new"
    echo "Debian $suite now ships restic $got, not $v; update restic_suite in scripts/restic.sh" >&2
    return 1
  fi
  rm -rf "${RESTIC_CACHE:?}/$v"
  mv "$RESTIC_CACHE/$v.new" "$RESTIC_CACHE/$v"
}
