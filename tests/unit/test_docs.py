"""The README's layout table names every module, and docs/architecture.md is where it points."""
import pytest

from tests.conftest import ROOT

_SOURCES = ["sdk/npu_sdk", "sdk/npu_sdk/link", "firmware/npufw", "board_emulator/npu_emulator", "tools"]


@pytest.mark.parametrize("folder", _SOURCES)
def test_the_readme_layout_lists_every_module(folder):
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Writing your own tests")]
    missing = [p.name for p in sorted((ROOT / folder).iterdir())
               if p.suffix in (".py", ".sh") and p.name != "__init__.py" and p.name not in layout]
    assert not missing, "README.md's layout table lacks %s" % missing


def test_the_readme_points_at_the_architecture_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "docs/architecture.md" in readme and "../shared" not in readme.replace("../shared/micropython", "")
