"""Files -> runners: every engine behind one :class:`~mmadfer.runtime.runner.Runner` interface.

:mod:`~mmadfer.runtime.backends` names the engines and the CPU fallback order, :mod:`~mmadfer.runtime.load` builds a
runner (``load_runner``), :mod:`~mmadfer.runtime.runner` holds the protocol and the PyTorch runner,
:mod:`~mmadfer.runtime.onnx` and :mod:`~mmadfer.runtime.openvino` the runners of exported files, and
:mod:`~mmadfer.runtime.cache` the conversion cache. This package imports nothing itself, so that the CLI can list the
backends without loading torch.
"""
