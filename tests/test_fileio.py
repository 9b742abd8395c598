"""Atomic writes leave files and directories with the usual permissions (not mkstemp's owner-only 0600/0700)."""
import os
import stat

from kdnlp.fileio import atomic_dir, write_json


def test_atomic_writes_get_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "report.json", {"a": 1})
        with atomic_dir(tmp_path / "model") as d:
            (d / "weights.bin").write_bytes(b"x")
        assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
        assert (tmp_path / "model" / "weights.bin").read_bytes() == b"x"
    finally:
        os.umask(mask)
