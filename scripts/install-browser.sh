#!/usr/bin/env bash
# Install headless Chromium (Debian's `chromium` package) and a CJK font for the browser tests
# of geoalloc.maps (tests/browser/). Never downloads a browser build of its own: Python's
# playwright drives this system Chromium through executable_path=/usr/bin/chromium.
# Idempotent and non-interactive; safe to call before every test run (the Makefile does).
set -euo pipefail

# The maps (and so the browser tests) inline Leaflet and its plugins from their npm tarballs,
# installed into geoalloc/maps/vendor/ (git-ignored) by `make install`; make sure they are there.
prefetch_assets() {
    local py=".venv/bin/python"
    [ -x "$py" ] || py="$(command -v python3)"
    (cd "$(dirname "$0")/.." && "$py" -c "from geoalloc.maps.assets import main; main()") \
        || echo "install-browser: could not prefetch map assets (run make install)" >&2
}

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
# Without a CJK font the Chinese labels render as boxes in the screenshots.
if ! fc-list 2>/dev/null | grep -qiE 'wqy|noto sans cjk|droid sans fallback'; then
    need+=(fonts-wqy-microhei)
fi
if [ ${#need[@]} -eq 0 ]; then
    echo "install-browser: chromium and a CJK font are present"
    prefetch_assets
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# Wait for other apt users instead of failing on the lock.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
echo "install-browser: installing ${need[*]}"
$SUDO apt-get "${APT_OPTS[@]}" update -qq
$SUDO apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${need[@]}"
/usr/bin/chromium --version
prefetch_assets
