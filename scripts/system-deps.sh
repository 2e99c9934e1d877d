#!/usr/bin/env bash
# Debian packages clinicall uses: espeak-ng (offline speech), sox with MP3 support (joins and converts
# clips, decodes gTTS), a CJK font (the pages' Chinese; WenQuanYi Micro Hei, 5 MB, rather than Noto CJK's 60 MB),
# and for the tests Chromium (pages, driven by Playwright).
#   scripts/system-deps.sh run    what `make run` needs (missing ones only warn: announcements stay silent)
#   scripts/system-deps.sh test   what `make test` needs (missing ones fail)
#   scripts/system-deps.sh deploy what `make test-deploy` needs: nginx and openssl (missing ones fail)
# Installs what is missing when we are root on Debian; otherwise says what to install.
set -euo pipefail
purpose=${1:-test}
packages=(espeak-ng sox libsox-fmt-mp3 fonts-wqy-microhei)
[ "$purpose" = test ] && packages+=(chromium)
[ "$purpose" = deploy ] && packages=(nginx openssl)
need=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need+=("$package")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
elif [ "$purpose" = run ]; then
  echo "warning: without ${need[*]} the spoken announcements stay silent (or Chinese shows as boxes); install them with: sudo apt-get install ${need[*]}" >&2
else
  echo "Please install these Debian packages first: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
