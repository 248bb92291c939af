"""Real-Pico path without a Pico: UF2, deploy, the UART protocol and `measure` against the device
firmware running on a virtual Pico behind a pseudo-terminal."""

import json
import struct
import time

import numpy as np
import pytest
import serial

from powerprune.cli import main
from powerprune.mcu.deploy import deploy
from powerprune.mcu.measure import MeasureError, energy_from_csv
from powerprune.mcu.protocol import CMD_INFER, CMD_INFO, SYNC_REQUEST, ProtocolError, call, read_response, request
from powerprune.mcu.uf2 import RP2040_FAMILY_ID, UF2Error, read_uf2, write_uf2
from powerprune.mcu.virtual_board import VirtualBoard
from powerprune.quantize import quantize
from powerprune.tflite import save_tflite


def test_uf2_roundtrip_and_checks():
    data = bytes(range(256)) * 3 + b"tail"
    uf2 = write_uf2([(0x20000000, data)])
    assert len(uf2) == 4 * 512
    blocks = read_uf2(uf2)
    assert [b.address for b in blocks] == [0x20000000 + 256 * i for i in range(4)]
    assert b"".join(b.data for b in blocks)[:len(data)] == data
    assert struct.unpack_from("<I", uf2, 28)[0] == RP2040_FAMILY_ID
    with pytest.raises(UF2Error, match="family"):
        read_uf2(write_uf2([(0x20000000, data)], family_id=0x1234))
    with pytest.raises(UF2Error):
        read_uf2(uf2[:700])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, trained, train_small):
    d = tmp_path_factory.mktemp("deploy")
    graph = quantize(trained, train_small.take(100))
    save_tflite(graph, d / "model.tflite")
    res = deploy(graph, d / "out", kernels="auto")
    return d, graph, res


@pytest.mark.slow
def test_deploy_writes_a_ram_uf2_and_pico_sdk_sources(deployed):
    d, _, res = deployed
    blocks = read_uf2((d / "out" / "firmware.uf2").read_bytes())
    assert min(b.address for b in blocks) == 0x20000000  # RAM-only: the bootrom starts it there
    src = d / "out" / "src"
    cmake = (src / "CMakeLists.txt").read_text()
    assert "pico_sdk_init()" in cmake and "model.c" in cmake and "startup.c" not in cmake
    assert (src / "device_main.c").exists() and (src / "model.h").exists()


@pytest.mark.slow
def test_measure_end_to_end_on_the_virtual_board(deployed, capsys):
    d, _, _ = deployed
    with VirtualBoard(d / "out" / "firmware.uf2") as board:
        assert main(["measure", "--port", board.port, "--model", str(d / "model.tflite"), "--images", "4",
                     "--json"]) == 0
        report = json.loads(capsys.readouterr().out)["board"]
        time.sleep(0.3)
        markers = list(board.marker_high_cycles)
    assert report["images"] == 4 and report["bit_exact"]
    # the marker pin is high for as long as the firmware's own SysTick count says, within a few cycles
    assert len(markers) == 4
    for m in markers:
        assert abs(m - report["cycles_mean"]) < 0.01 * report["cycles_mean"]
    assert abs(np.mean(markers) - report["cycles_mean"]) < 100


@pytest.mark.slow
def test_corrupt_frames_get_error_replies_and_never_hang(deployed):
    d, graph, _ = deployed
    with VirtualBoard(d / "out" / "firmware.uf2") as board, serial.Serial(board.port, 115200, timeout=0.2) as port:
        bad_crc = bytearray(request(CMD_INFO))
        bad_crc[-1] ^= 0xFF
        port.write(bytes(bad_crc))
        assert read_response(port)[0] == 1
        port.write(bytes([SYNC_REQUEST, CMD_INFER, 5, 0]))  # wrong length for this model
        assert read_response(port)[0] == 2
        port.write(bytes([SYNC_REQUEST, 9, 0, 0, 0, 0]))    # unknown command
        assert read_response(port)[0] == 3
        port.write(request(CMD_INFER, bytes(graph.input.size))[:40])  # truncated: the board times out
        assert read_response(port, timeout=20)[0] == 4
        with pytest.raises(ProtocolError, match="bad crc"):
            port.write(bytes(bad_crc))
            call(port, CMD_INFO)
        assert struct.unpack("<HH", call(port, CMD_INFO)) == (graph.input.size, graph.output.size)


def test_energy_from_a_power_analyzer_trace(tmp_path):
    t = np.arange(0, 1.0, 1e-4)
    marker = ((t > 0.1) & (t < 0.3)) | ((t > 0.5) & (t < 0.7))
    current = np.where(marker, 0.025, 0.010)
    path = tmp_path / "trace.csv"
    rows = ["time_s,current_a,voltage_v,marker"] + [f"{a:.6f},{b},5.0,{int(m)}" for a, b, m in zip(t, current, marker,
                                                                                                   strict=True)]
    path.write_text("\n".join(rows) + "\n")
    e = energy_from_csv(path)
    assert e["inferences"] == 2
    assert e["energy_mj_mean"] == pytest.approx(5.0 * 0.025 * 0.2 * 1e3, rel=0.01)  # 25 mJ
    assert e["duration_ms_mean"] == pytest.approx(200, rel=0.01)
    (tmp_path / "bad.csv").write_text("t,i\n1,2\n")
    with pytest.raises(MeasureError, match="columns"):
        energy_from_csv(tmp_path / "bad.csv")
