"""tinygan's benchmarks: speed (``speed.py``), sample quality (``quality.py``), mode collapse
(``modes.py``), the losses and regularisers side by side (``losses.py``), the GPU check
(``gpu_check.py``), and finished investigations (``investigations/``).

A package, so that the scripts import what they share as ``benchmarks.common`` (and each other's
parts as ``benchmarks.flops``, ``benchmarks.step_profile``, ...), both when a test imports them and
when they run as ``python benchmarks/speed.py``: a script that imports from here first puts the
repository, not its own folder, at the head of ``sys.path``, as ``python -m benchmarks.speed`` run
from the repository would. See ``README.md`` in this folder.
"""
