"""`--dist loadgroup` keeps each `xdist_group` on one worker (tests/xdist_groups.py)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GROUPED = '''
import pytest

pytestmark = pytest.mark.xdist_group("expensive")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with open({builds!r}, "a") as file:
        file.write("built\\n")


@pytest.mark.parametrize("i", range(6))
def test_grouped(built, i):
    pass
'''

LOOSE = '''
import pytest


@pytest.mark.parametrize("i", range(6))
def test_loose(i):
    pass
'''


@pytest.mark.slow
def test_a_group_runs_on_one_worker_and_builds_its_module_fixture_once(tmp_path):
    builds = tmp_path / "builds.txt"
    (tmp_path / "test_grouped.py").write_text(GROUPED.format(builds=str(builds)))
    (tmp_path / "test_loose.py").write_text(LOOSE)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "tests.xdist_groups", "-p", "no:cacheprovider", "-o", "addopts=",
         str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    workers = re.findall(r"\[(gw\d)\].*PASSED \S*test_grouped\.py::test_grouped\[\d\]@expensive",
                         result.stdout)
    assert len(workers) == 6 and len(set(workers)) == 1, result.stdout
    assert len(re.findall(r"PASSED \S*test_loose\.py", result.stdout)) == 6, result.stdout
    assert builds.read_text() == "built\n"
