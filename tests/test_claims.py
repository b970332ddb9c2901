"""Claims on result files: parallel processes over one list of results split it instead of doubling work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jointcodec.utils import claimed

HOLD = """
import sys, time
from jointcodec.utils import claimed
with claimed(sys.argv[1], sys.argv[2]) as mine:
    print(mine, flush=True)
    sys.stdin.readline()  # hold the claim until the test says so
"""


def test_a_claim_is_exclusive_and_released(tmp_path: Path) -> None:
    result, locks = tmp_path / "results" / "jpeg420" / "15-robust.json", tmp_path / "claims"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(result), str(locks)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"  # the first process gets it
        with claimed(result, locks) as mine:
            assert not mine  # another process is producing it
    finally:
        holder.communicate("\n", timeout=60)
    with claimed(result, locks) as mine:
        assert mine  # released when the holder finished
    assert not result.exists() and not any(p.suffix == ".json" for p in locks.iterdir())


def test_an_existing_result_is_never_claimed(tmp_path: Path) -> None:
    result = tmp_path / "clean" / "none-robust.json"
    result.parent.mkdir()
    result.write_text("{}")
    with claimed(result, tmp_path / "claims") as mine:
        assert not mine
