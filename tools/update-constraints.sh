#!/usr/bin/env bash
# Move the pinned dependency set (constraints.txt) forward, or re-pin it from a venv that already passed.
#
#   tools/update-constraints.sh                  fresh venv in a temporary folder, the newest releases that
#                                                pyproject.toml's bounds allow (no constraints), the whole test
#                                                suite; only if every test passes is constraints.txt rewritten
#   tools/update-constraints.sh --newest         the same, but also the newest releases beyond the upper bounds of
#                                                the fast-moving packages; on success it prints the versions to
#                                                raise the bounds to (constraints.txt is left alone: it must agree
#                                                with pyproject.toml, so raise the bounds, then run it again)
#   tools/update-constraints.sh --freeze-current [VENV]
#                                                just write constraints.txt from VENV (default .venv), e.g. after
#                                                adding an extra and running the tests in that venv
#
# Extra arguments after -- go to pytest (e.g. -- -x). The temporary venv is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
#: Packages given tested upper bounds in pyproject.toml.
BOUNDED=(torch torchvision timm numpy av onnx onnxruntime onnxscript openvino nncf)

freeze() {  # freeze VENV into constraints.txt, atomically, without mmadfer itself
    local venv=$1 tmp
    tmp=$(mktemp "$ROOT/.constraints.txt.XXXXXX")
    {
        echo "# Exact versions the test suite passed with (pip freeze of the tested venv, mmadfer itself left out)."
        echo "# Install with: .venv/bin/pip install -c constraints.txt -e \".[all,dev]\"   Regenerate: tools/update-constraints.sh"
        "$venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | grep -v -i '^mmadfer[= @]'
    } > "$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "$ROOT/constraints.txt"
    echo "wrote constraints.txt ($(grep -c '==' constraints.txt) packages, from $venv)"
}

mode=bounds
case "${1:-}" in
    --freeze-current) freeze "$(cd "${2:-.venv}" && pwd)"; exit 0 ;;
    --newest) mode=newest; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
esac
[[ "${1:-}" == "--" ]] && shift

work=$(mktemp -d "${TMPDIR:-/tmp}/mmadfer-constraints.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
"${pip[@]}" install --upgrade -e ".[all,dev]"
if [[ $mode == newest ]]; then  # past pyproject's bounds: pip warns that mmadfer's requirements are not met
    "${pip[@]}" install --upgrade "${BOUNDED[@]}" || true
fi
"$work/venv/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
    | grep -i -E "^($(IFS='|'; echo "${BOUNDED[*]}")) " || true
"$work/venv/bin/python" -m pytest -q "$@"   # set -e: a failure stops here, constraints.txt untouched
if [[ $mode == newest ]]; then
    echo "every test passed with the versions above: raise pyproject.toml's upper bounds past them, then run"
    echo "tools/update-constraints.sh (without --newest) to pin the new set"
else
    freeze "$work/venv"
fi
