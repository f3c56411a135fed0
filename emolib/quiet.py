"""A quiet console for `make all`: the one place that decides which library output is noise.

`python -m emolib.quiet ARGS` is papermill's command line (same arguments) with one
change, and the Makefile runs every notebook through it. What `make all` used to
print besides progress bars and results, and what became of it:

* `[IPKernelApp] WARNING | Kernel is running over TCP without encryption ...`, once
  per notebook. ipykernel logs it when the kernel's ZeroMQ sockets are plain TCP on
  127.0.0.1, which is jupyter_client's default. Not silenced but fixed: the kernel
  manager papermill starts gets `transport_encryption="auto"`, so it provisions
  CurveZMQ keys for kernels whose kernelspec declares support (ipykernel >= 7 does)
  and the kernel connection is encrypted. Where pyzmq has no CurveZMQ, or a kernel
  does not declare support, nothing changes (plain TCP, and the warning stays).
* `E... node_def_util.cc] NodeDef mentions attribute use_unbounded_threadpool which is
  not in the op definition: Op<name=MapDataset ...>`, once per training notebook. With
  op determinism on (the training notebook's `train.set_seed(..., deterministic=True)`),
  tf.data rewrites a parallel map of stateful (random) ops, our augmentation, into a
  sequential `MapDataset` and copies the parallel map's `use_unbounded_threadpool`
  attribute, which MapDataset does not define; TensorFlow logs that at ERROR level
  and ignores the attribute ("Unknown attributes will be ignored"): harmless, a
  TensorFlow inconsistency. TF_CPP_MIN_LOG_LEVEL=3 would hide it, but also every other
  C++ error line, so it is not used. Fixed at the cause instead: under op determinism
  `emolib.pipeline.make_dataset` asks for the sequential map itself (what the rewrite
  produced anyway; the same batches), so there is nothing to rewrite.
* `tf.function retracing` warnings from `make bench`: fixed in bench.py (the
  per-image loop reused `model.predict`'s function with a new dataset each call).
* Left as is: `WARNING: All log messages before absl::InitializeLog() is called are
  written to STDERR` followed by TensorFlow's `oneDNN custom operations are on` INFO
  line, twice per notebook that imports TensorFlow. They are logged while TensorFlow's
  shared libraries load, before any log level applies (TF_CPP_MIN_LOG_LEVEL=3 does not
  hide them either); the only switch, TF_ENABLE_ONEDNN_OPTS=0, changes the numbers.
  ipykernel copies the kernel's low-level stderr both into the notebook and onto the
  console, so they cannot be dropped from the console alone without also dropping the
  kernel's real errors.

TF_CPP_MIN_LOG_LEVEL=2 (exported by the Makefile) keeps TensorFlow's C++ INFO and
WARNING lines out of the console; errors still show.
"""

from __future__ import annotations

import sys


def kernel_config():
    """Traitlets config for the kernel manager papermill creates: CurveZMQ where available."""
    from traitlets.config import Config

    try:
        import zmq

        has_curve = bool(zmq.has("curve"))
    except Exception:  # noqa: BLE001 - no curve support: keep the defaults
        has_curve = False
    return Config({"KernelManager": {"transport_encryption": "auto"}}) if has_curve else Config()


def main(argv: list[str] | None = None) -> int:
    import functools

    import papermill.cli as pm_cli

    config = kernel_config()
    if config:
        # The CLI passes no engine options through, so hand the config to its execute_notebook;
        # papermill gives extra keyword arguments to nbclient's NotebookClient, which builds the
        # kernel manager with them.
        pm_cli.execute_notebook = functools.partial(pm_cli.execute_notebook, config=config)
    try:
        pm_cli.papermill.main(
            args=list(sys.argv[1:] if argv is None else argv), prog_name="papermill", standalone_mode=True
        )
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
