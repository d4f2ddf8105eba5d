# Sourced by the GPU scripts: the output folder, and PyAV from the carried wheel (.whl/, git-ignored) when the
# lent machine's Python lacks it, with the checkout's src/ on the path.
OUT=${OUT:-/tmp/mmadfer-bench}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
export PYTHONUNBUFFERED=1
