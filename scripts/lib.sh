# Shared by the scripts in this directory: paths, names and how they speak.
# shellcheck shell=bash
here=${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
venv=$here/.venv
app_venv=$here/.cache/app-venv
fixtures=$here/.cache/fixtures
ssh_key=$here/.cache/ssh/id_ed25519
base_image=localhost/fastapi-deploy/debian12:latest
# image_of MAJOR: the test bed's image of Debian MAJOR (12 bookworm, 13 trixie).
image_of() { echo "localhost/fastapi-deploy/debian$1:latest"; }
# Debian's suite of each major release the test bed builds.
declare -A debian_suite=([12]=bookworm [13]=trixie)
podman_conf=/etc/containers/containers.conf.d/50-fastapi-deploy.conf
debian_mirror=${FD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [[ -t 1 ]]; then _b=$'\e[1m' _g=$'\e[32m' _r=$'\e[31m' _n=$'\e[0m'; else _b= _g= _r= _n=; fi
say() { printf '%s==> %s%s\n' "$_b" "$*" "$_n"; }
ok() { printf '    %sok%s %s\n' "$_g" "$_n" "$*"; }
die() { printf '%sERROR:%s %s\n' "$_r" "$_n" "$*" >&2; exit 1; }

# Temporary directories live until the script exits.
_tmpdirs=()
mktemp_dir() { local d; d=$(mktemp -d "${TMPDIR:-/var/tmp}/fd.XXXXXX"); _tmpdirs+=("$d"); echo "$d"; }
trap 'rm -rf "${_tmpdirs[@]}"' EXIT

# pip, minus the noise of find-links entries this machine's pip.conf names but lacks.
pip_install() {
  local env=$1; shift
  "$env/bin/pip" install -q "$@" 2> >(grep -v '^WARNING: Location .* is ignored' >&2)
}
