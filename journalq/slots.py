"""Where a run's jobs go: its slots, each with the GPUs it hands its job.

`slots: N` gives N slots without devices; `gpus: [0, 1]` one slot per device (times
`jobs_per_gpu`), and each job in such a slot sees only its device (`CUDA_VISIBLE_DEVICES`);
`gpus: auto` takes the devices from `CUDA_VISIBLE_DEVICES` if it is set, else from
`nvidia-smi -L`. The command line (`--slots`, `--gpus`) replaces the config's choice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping

import attrs

from journalq.errors import ConfigError, UsageError
from journalq.schema import Gpus, gpus
from journalq.strict import ValueProblem


@attrs.frozen
class Slot:
    """Where one job runs at a time: its number (from 0) and the devices it is given."""

    index: int
    devices: tuple[str, ...] = ()

    def describe(self) -> str:
        """`slot 1 (GPU 0)` for progress lines."""
        where = f" (GPU {','.join(self.devices)})" if self.devices else ""
        return f"slot {self.index}{where}"


def plan(slots: int | None, gpus: tuple[str, ...] | None, per_gpu: int) -> list[Slot]:
    """The slots: device slots (each device `per_gpu` times, devices interleaved so that
    the first jobs spread over the devices), else `slots` plain ones (default one)."""
    if gpus:
        return [Slot(n, (device,)) for n, device in
                enumerate(device for _ in range(per_gpu) for device in gpus)]
    return [Slot(n) for n in range(slots or 1)]


def parse_gpus_flag(text: str) -> Gpus:
    """`--gpus 0,1` (or `auto`) as the config's `gpus:` would give it."""
    try:
        return gpus(text if text == "auto" else [w.strip() for w in text.split(",")])
    except ValueProblem as problem:
        raise UsageError(f"--gpus {text!r}: {problem}") from None


def find_gpus(env: Mapping[str, str] = os.environ,
              list_devices: Callable[[], str | None] | None = None) -> tuple[str, ...]:
    """`gpus: auto`: CUDA_VISIBLE_DEVICES if set, else what `nvidia-smi -L` lists."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = tuple(word.strip() for word in visible.split(",") if word.strip())
        if ids and ids != ("-1",):
            return ids
        raise ConfigError("gpus: auto found no GPU: CUDA_VISIBLE_DEVICES is set but names "
                          "none; unset it, or give the devices (gpus: [0, 1]) or slots: N")
    listed = (list_devices or _nvidia_smi)()
    ids = tuple(re.findall(r"^GPU (\d+):", listed or "", flags=re.M))
    if not ids:
        raise ConfigError("gpus: auto found no GPU (no CUDA_VISIBLE_DEVICES, and "
                          f"{'nvidia-smi -L lists none' if listed is not None else 'no nvidia-smi'}"
                          "); give the devices (gpus: [0, 1]) or slots: N")
    return ids


def _nvidia_smi() -> str | None:
    """What `nvidia-smi -L` prints, or None if it is not there or fails (bounded in time)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else ""
