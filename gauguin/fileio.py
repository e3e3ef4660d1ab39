"""Small file utilities shared by checkpoints, caches and metrics."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor


class WeightsFileError(ValueError):
    """A weights file is corrupt, of another format or version, or does not fit its network."""


def write_fix(err: OSError) -> str:
    """What to do about a failed write, by its errno."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on that disk or set out_dir to a folder on another disk"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable or set out_dir to a writable folder"
    return "check the disk and the path"


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation: the file, what went wrong, the fix."""
    reason = err.strerror or str(err)
    where = f"{err.filename}: " if err.filename is not None else ""
    return f"{where}{reason}" if err.errno is None else f"{where}{reason}; {write_fix(err)}"


@contextlib.contextmanager
def named_os_error(path: str | Path):
    """Re-raise an ``OSError`` that names no file (a failed write or flush) as one naming ``path``."""
    try:
        yield
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/gauguin/<parts>`` (default ``~/.cache/gauguin/<parts>``)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base.joinpath("gauguin", *parts)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(state: dict[str, Tensor]) -> str:
    """SHA-256 of a state dict's tensors (names, dtypes, shapes, bytes), independent of file format.

    BatchNorm's ``num_batches_tracked`` counters are left out: they never change the outputs.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        if name.endswith(".num_batches_tracked"):
            continue
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_safetensors_atomic(state: dict[str, Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write ``state`` to ``path`` as safetensors with ``metadata``; readers never see a half-written file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # a reader never sees a half-written file
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: a
    failed or interrupted write never leaves a half file over a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_weights_file(path: Path, model: torch.nn.Module, kind: str, fmt: str, version: int, fix: str,
                      error: type[WeightsFileError] = WeightsFileError) -> dict[str, str]:
    """Load the safetensors file ``path`` (metadata ``format`` = ``fmt``, ``architecture_version`` =
    ``version``) into ``model``; returns its metadata. Whatever is wrong raises ``error`` naming the
    file, the ``kind`` of network expected and the ``fix``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise error(f"{path} is not a readable safetensors file ({err}); it is truncated or corrupt: "
                    f"delete it and {fix}") from None
    if metadata.get("format") != fmt:
        raise error(f"{path} is not a {kind} (metadata format {metadata.get('format')!r}, expected {fmt!r}); {fix}")
    if metadata.get("architecture_version") != str(version):
        raise error(f"{path} holds {kind} architecture version {metadata.get('architecture_version')}, this "
                    f"gauguin needs version {version}; {fix}")
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith(".num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise error(f"{path} does not fit the {kind} (missing {missing[:5]}, unexpected {unexpected[:5]}, "
                    f"wrong shape {wrong[:5]}); {fix}")
    model.load_state_dict({**own, **state})
    return metadata
