"""Long work reports progress off a terminal too (CI logs, nohup, `make run | cat`)."""

import io

from powerprune.progress import Progress, format_seconds


def test_off_a_terminal_every_finished_unit_prints_a_line_with_eta():
    out = io.StringIO()  # not a TTY, like a pipe or a log file
    with Progress(3, "prune, quantize, profile", "model", stream=out) as bar:
        for label in ("dense 1x", "apoz 4x", "magnitude 4x"):
            bar.update(note=f"{label} done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "prune, quantize, profile: 3 models to go"
    assert len(lines) == 4
    assert lines[2].startswith("prune, quantize, profile: 2/3 models (apoz 4x done), ")
    assert "1 left, ETA" in lines[2] and lines[3].endswith("0 left, ETA 0 s")


def test_line_every_groups_steps_into_epochs_and_disabled_prints_nothing():
    out = io.StringIO()
    bar = Progress(10, "train", "step", stream=out, line_every=5)
    for _ in range(10):
        bar.update()
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == ["train: 5/10 steps", "train: 10/10 steps"]
    quiet = io.StringIO()
    Progress(2, "x", stream=quiet, enabled=False).update(2)
    assert quiet.getvalue() == ""


def test_durations_read_like_a_person_writes_them():
    assert [format_seconds(s) for s in (42, 185, 3720)] == ["42 s", "3 min 05 s", "1 h 02 min"]
