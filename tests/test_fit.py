"""`irnet-edge fit`: the largest MCU-family network that fits a board, from linked firmware and exact counts."""
import json
import shutil

import pytest
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.codegen.firmware import load_board
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.fit import fit, train_pick
from irnet_edge.nn.zoo import FAMILY_DEPTHS, FAMILY_STEMS


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """fit on a 512 KB / 128 KB board and a 1 MB / 256 KB one (both Cortex-M4: the second reuses the counts)."""
    cache = tmp_path_factory.mktemp("fit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        results = {board: fit(board, "mnist") for board in ("nucleo-f446re", "nrf52840dk")}
    return results, cache / "irnet-edge" / "fit-instructions.json"


def _use_counts(cache_file, monkeypatch, tmp_path):
    """The module's counts in this test's own cache, so the CLI does not count the family again."""
    target = tmp_path / "cache" / "irnet-edge" / cache_file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache_file, target)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_pick_differs_by_board_and_fits(searched):
    results, _ = searched
    picks = {board: result.pick for board, result in results.items()}
    assert picks["nucleo-f446re"].name != picks["nrf52840dk"].name
    assert picks["nrf52840dk"].params > picks["nucleo-f446re"].params
    for board, result in results.items():
        limits = load_board(board)
        assert len(result.candidates) == len(FAMILY_DEPTHS) * len(FAMILY_STEMS)
        pick = result.pick
        # linked for the board: flash and RAM (stack included) as placed, within the board's
        assert 0 < pick.flash <= limits.flash["length"] and 0 < pick.ram <= limits.ram["length"]
        assert pick.instructions > 0 and pick.ms == pytest.approx(
            pick.instructions * result.cycles_per_instruction / limits.clock_hz * 1e3)
        # every larger candidate is refused for its size, and says so
        for other in result.candidates:
            if other.params > pick.params:
                assert other.problem and ("too big" in other.problem or "does not link" in other.problem)
        assert "*" + " " + pick.name in result.table()
    big = next(c for c in results["nucleo-f446re"].candidates if c.name == "mcu_d3_s128")
    assert big.problem.startswith("too big: flash") and big.flash is None


def test_counts_do_not_depend_on_the_board_and_match_the_zoo(searched):
    """Same core, same architecture: one count; mcu_d3_s32 is mcu_m4 and mcu_d2_s16 is mcu_m0."""
    results, _ = searched
    a = {c.name: c.instructions for c in results["nucleo-f446re"].candidates if c.instructions}
    b = {c.name: c.instructions for c in results["nrf52840dk"].candidates if c.instructions}
    assert all(b[name] == count for name, count in a.items())
    assert a["mcu_d3_s32"] > a["mcu_d2_s16"] > 0


def test_a_latency_no_candidate_meets_is_one_error_naming_the_fastest(searched, monkeypatch, tmp_path):
    results, cache_file = searched
    _use_counts(cache_file, monkeypatch, tmp_path)
    fastest = min((c for c in results["nucleo-f446re"].candidates if c.instructions), key=lambda c: c.instructions)
    result = CliRunner().invoke(main, ["fit", "--board", "nucleo-f446re", "--dataset", "mnist",
                                       "--latency-ms", "0.001"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert f"the fastest, {fastest.name}, needs {fastest.instructions:,} instructions" in errors[0]


def test_a_latency_picks_a_faster_network_and_json(searched, monkeypatch, tmp_path):
    results, cache_file = searched
    _use_counts(cache_file, monkeypatch, tmp_path)
    unbounded = results["nucleo-f446re"].pick
    limit = unbounded.ms * 0.5
    result = CliRunner().invoke(main, ["fit", "--board", "nucleo-f446re", "--dataset", "mnist", "--latency-ms",
                                       str(limit), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    pick = next(c for c in data["candidates"] if c["name"] == data["pick"])
    assert pick["estimated_ms"] <= limit and data["pick"] != unbounded.name
    assert all(c["problem"] for c in data["candidates"] if c["estimated_ms"] and c["estimated_ms"] > limit)


def test_train_trains_the_pick_and_builds_its_firmware(searched, mnist_dir, tmp_path):
    results, _ = searched
    result = results["nucleo-f446re"]
    fast = min((c for c in result.candidates if c.instructions), key=lambda c: c.instructions)
    for c in result.candidates:  # as --latency-ms would: only the fastest remains
        if c is not fast and c.problem is None:
            c.problem = "slower than the test's limit"
    report = train_pick(result, tmp_path / "run", mnist_dir, epochs=1, train_limit=1024, log=lambda m: None)
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "firmware" / "app.elf").is_file()
    assert "nucleo-f446re" in report
    info = json.loads((tmp_path / "run" / "firmware" / "firmware.json").read_text())
    assert info["board"] == "nucleo-f446re" and info["model"] == fast.name


@pytest.mark.parametrize("args, message", [
    (["--out", "x"], "--out applies only with --train"),
    (["--epochs", "2"], "--epochs applies only with --train"),
    (["--train"], "--train needs --out"),
    (["--latency-ms", "0"], "is not in the range"),
])
def test_option_errors(args, message):
    result = CliRunner().invoke(main, ["fit", "--board", "nucleo-f446re", *args])
    assert result.exit_code == 1 and result.output.count("Error:") == 1 and message in result.output, result.output


def test_api_errors():
    with pytest.raises(IrnetEdgeError, match="unknown board"):
        fit("nope")
    with pytest.raises(IrnetEdgeError, match="latency must be a positive number"):
        fit("nucleo-f446re", latency_ms=-1)
