"""The study configs that ship inside the package (govtune/configs/), by name: `govtune run demo` runs
govtune/configs/demo.yaml from a wheel as from a clone (where configs/ links to the same folder).

A name is the file's path under govtune/configs/ without `.yaml`: demo, cpu_method_study, paper/xnli_main.
A file that exists wins over a name, so a local `demo` file is never shadowed."""

from __future__ import annotations

import difflib
from pathlib import Path

CONFIGS_DIR = Path(__file__).parent / "configs"


def builtin_configs() -> dict[str, Path]:
    """{name: path} of every shipped config: demo, then the other top-level ones, then paper/*."""
    paths = sorted(CONFIGS_DIR.rglob("*.yaml"),
                   key=lambda p: (len(p.relative_to(CONFIGS_DIR).parts), p.stem != "demo", p.as_posix()))
    return {p.relative_to(CONFIGS_DIR).with_suffix("").as_posix(): p for p in paths}


def resolve_config(ref: str | Path) -> Path:
    """The config file `ref` names: a path to an existing file, or else a built-in config's name (with or without
    `.yaml`, or as configs/NAME.yaml from a clone's root). FileNotFoundError lists the built-in names."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    known = builtin_configs()
    name = path.as_posix().removesuffix(".yaml").removeprefix("configs/")
    if name in known:
        return known[name]
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise FileNotFoundError(f"config {str(ref)!r} is neither a file nor a built-in config{hint}; built-in configs: "
                            f"{', '.join(known)} (e.g. `govtune run demo`), or pass a study YAML's path")
