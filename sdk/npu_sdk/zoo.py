"""The model zoo: small real models that ship with npu-sdk, found where they are installed.

The zoo is the `npu_zoo` package (`model_zoo/` in a source checkout): one directory per model
with its files and a card (`README.md`), plus an index (`README.md`) whose table gives each
model's task.

    from npu_sdk import zoo
    zoo.path("digits_mlp") / "int8.tflite"
"""
import difflib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import NpuError

_INDEX_ROW = re.compile(r"^\|\s*\[([^\]]+)\]\([^)]*\)\s*\|\s*([^|]*?)\s*\|")


@dataclass(frozen=True)
class ZooModel:
    name: str
    task: str
    path: Path
    files: tuple


def root():
    """The zoo directory: the installed `npu_zoo` package (model_zoo/ in an editable install)."""
    try:
        where = importlib.resources.files("npu_zoo")
    except ModuleNotFoundError:
        raise NpuError("the model zoo is not installed (no `npu_zoo` package); reinstall npu-sdk "
                       "(pip install --force-reinstall npu-sdk)") from None
    return Path(where)


def models(zoo_root=None):
    """Every model of the zoo, sorted by name: a directory with a card (README.md)."""
    zoo_root = Path(zoo_root) if zoo_root is not None else root()
    tasks = _index_tasks(zoo_root / "README.md")
    found = []
    for d in sorted(p for p in zoo_root.iterdir() if (p / "README.md").is_file()):
        files = tuple(sorted(f.name for f in d.iterdir() if f.is_file()))
        found.append(ZooModel(d.name, tasks.get(d.name) or _card_task(d / "README.md"), d, files))
    return found


def get(name, zoo_root=None):
    """The zoo model called `name`; NpuError (with a suggestion) if there is none."""
    found = models(zoo_root)
    for m in found:
        if m.name == name:
            return m
    message = "no zoo model named %s; npu zoo list shows them" % name
    close = difflib.get_close_matches(name, [m.name for m in found], n=1)
    if close:
        message += " (did you mean %s?)" % close[0]
    raise NpuError(message)


def path(name, zoo_root=None):
    """The directory of zoo model `name`."""
    return get(name, zoo_root).path


def _index_tasks(index):
    """name -> task from the index table `| [name](name/README.md) | task | files |`."""
    try:
        text = index.read_text(encoding="utf-8")
    except OSError:
        return {}
    return {m.group(1): m.group(2) for m in map(_INDEX_ROW.match, text.splitlines()) if m}


def _card_task(card):
    """The first sentence under the card's `## Task` heading ('' if there is none)."""
    text = card.read_text(encoding="utf-8")
    m = re.search(r"^## Task\s*\n+(.+?)(?:\n\n|\Z)", text, re.M | re.S)
    if not m:
        return ""
    para = " ".join(m.group(1).split())
    return re.split(r"(?<=\.)\s", para, maxsplit=1)[0]
