"""A community garden: the shared base model and one adapter per member collective, each trained on that
collective's records only (`only_collective`), in RUN/<collective>/ with its own provenance, so that each can be
exported with its own card and `release affected` finds every adapter a person's text went into."""

from __future__ import annotations

from pathlib import Path

from codigit.errors import CodigitError


def release_collectives(recipe: Path, overrides: list[str]) -> tuple[Path, list[str]]:
    """(the base run folder, the collectives of the recipe's release split) without training anything."""
    import pyarrow.parquet as pq

    from codigit.release.build import split_file
    from codigit.train.recipe import parse_recipe
    from codigit.train.run import verified_release

    args, sft, _ = parse_recipe(recipe, [*overrides, "--use_cpu", "true"])  # paths only: no device is needed here
    manifest, path = verified_release(args)
    table = pq.read_table(split_file(path, args.release_split))
    if "collective" not in table.column_names:
        raise CodigitError(f"{path}: release {manifest.version} has no `collective` column: --each-collective needs "
                           "a study of several collectives")  # fmt: skip
    names = sorted({c for c in table.column("collective").to_pylist() if c})
    return Path(sft.output_dir), names


def each_collective(recipe: Path, overrides: list[str]) -> list[Path]:
    """Train one adapter per collective of the release, one after the other; returns their run folders. Run again
    after an interruption, it resumes the adapter it was on and skips none."""
    from codigit.train.run import train

    base, names = release_collectives(recipe, overrides)
    return [train(recipe, [*overrides, "--only_collective", name, "--output_dir", str(base / name)])
            for name in names]  # fmt: skip
