"""Flash images: our boot2 (CRC the bootrom checks), page-aligned UF2s, the virtual bootrom's checks,
and MLPerf Tiny's anomaly-detection model (too big for a RAM image) booting from flash on the
virtual Pico, bit-exact with TFLM's interpreter through the device protocol."""

from __future__ import annotations

import re
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from powerprune.cli import main
from powerprune.ir import Activation, Conv2D, FullyConnected, Graph, Pool2D, TensorInfo
from powerprune.mcu.boot2 import (
    BOOT2_BYTES,
    FLASH_CLKDIV,
    Boot2Error,
    assemble,
    boot2_c_source,
    crc32_rp2040,
    crc_ok,
    seal,
)
from powerprune.mcu.boot2 import source as boot2_source
from powerprune.mcu.build import SRAM_BYTES, FitError, toolchain
from powerprune.mcu.deploy import deploy
from powerprune.mcu.elf import read_elf
from powerprune.mcu.emulator import EmulatorError
from powerprune.mcu.protocol import CMD_INFER, CMD_INFO, call
from powerprune.mcu.staging import STAGING_BUDGET
from powerprune.mcu.uf2 import UF2Error, read_uf2, write_uf2
from powerprune.mcu.virtual_board import VirtualBoard
from powerprune.oracle import tflm_run
from powerprune.tflite import load_tflite, save_tflite

from .strategies import budget

AD01 = Path(__file__).parent / "fixtures" / "real_models" / "ad01_int8.tflite"
FLASH = 0x10000000
LINE_SCK_03H = 8 + 24 + 64  # command, address, one 8-byte cache line, all on one data line


def fc_graph(n_in: int = 16, n_out: int = 10, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    out = TensorInfo((n_out,), 0.1, 3)
    fc = FullyConnected(rng.integers(-127, 128, (n_out, n_in), dtype=np.int8), rng.integers(-500, 500, n_out).astype(
        np.int32), np.full(n_out, 0.01, np.float32), Activation("NONE", -128, 127), out)
    return Graph(TensorInfo((n_in,), 0.05, 0), [fc], name="fc")


def test_boot2_crc_is_the_bootroms_crc32():
    # CRC-32/MPEG-2's catalogue check value (poly 04C11DB7, init FFFFFFFF, no reflection, no xorout)
    assert crc32_rp2040(b"123456789") == 0x0376E6E7
    assert crc32_rp2040(b"") == 0xFFFFFFFF


@budget(50)  # a pure-Python CRC: the property needs few examples
@given(data=st.binary(max_size=300))
def test_crc_residue_is_zero_with_the_crc_appended_big_endian(data):
    """A non-reflected CRC without final XOR divides data + its own CRC (MSB first) exactly."""
    assert crc32_rp2040(data + crc32_rp2040(data).to_bytes(4, "big")) == 0


@pytest.mark.slow
def test_boot2_is_256_bytes_the_bootrom_accepts_and_configures_03h_xip():
    image = assemble(toolchain(), boot2_source())
    assert len(image) == BOOT2_BYTES and crc_ok(image)
    words = {struct.unpack_from("<I", image, i)[0] for i in range(0, 252, 4)}
    # its literal pool: SSI base, CTRLR0 (standard frames, 32-bit, EEPROM read), SPI_CTRLR0 (03h, 8-bit
    # instruction, 24-bit address, no wait), the image's vector table, VTOR
    assert {0x18000000, 0x001F0300, 0x03000218, 0x10000100, 0xE000ED08} <= words
    for pos in (0, 100, 251, 252, 255):  # any flipped bit, code or CRC, fails the bootrom's check
        bad = bytearray(image)
        bad[pos] ^= 0x10
        assert not crc_ok(bytes(bad))
    assert "section(\".boot2\")" in boot2_c_source(image)
    with pytest.raises(Boot2Error, match="252|256"):
        seal(bytes(253))
    with pytest.raises(Boot2Error, match="even divider"):
        assemble(toolchain(), boot2_source(), clkdiv=3)


def test_uf2_blocks_are_whole_aligned_pages():
    # .text ends mid-page and .data's load image follows at once: one block per page, not per segment
    blocks = read_uf2(write_uf2([(FLASH, bytes(range(256)) + b"\x01" * 44), (FLASH + 300, b"\x02" * 40)]))
    assert [b.address for b in blocks] == [FLASH, FLASH + 256]
    assert blocks[1].data[:84] == b"\x01" * 44 + b"\x02" * 40 and blocks[1].data[84:] == bytes(172)
    with pytest.raises(UF2Error, match="overlaps"):
        write_uf2([(FLASH, bytes(300)), (FLASH + 256, bytes(8))])


@pytest.fixture(scope="module")
def ad01(tmp_path_factory):
    out = tmp_path_factory.mktemp("ad01") / "pico"
    res = deploy(load_tflite(AD01), out, kernels="auto")  # auto: does not fit SRAM, so flash
    return out, res


@pytest.mark.slow
def test_ad01_deploys_as_a_flash_image(ad01):
    out, res = ad01
    # the weights do not fit SRAM; what does fit (up to staging.STAGING_BUDGET) is staged there at boot
    assert res["image"] == "flash" and res["flash_bytes"] > SRAM_BYTES
    assert res["sram_bytes"] <= STAGING_BUDGET + 16 * 1024
    blocks = read_uf2((out / "firmware.uf2").read_bytes())
    assert blocks[0].address == FLASH and all(b.address % 256 == 0 for b in blocks)
    assert blocks[0].data == assemble(toolchain(), boot2_source())  # our sealed boot2 comes first
    elf = read_elf(out / "firmware.elf")
    assert elf.symbol("pp_vectors") == FLASH + 0x100  # where boot2 points VTOR
    assert FLASH <= elf.symbol("pp_model_run") < FLASH + 2 * 1024 * 1024  # code executes in place


@pytest.mark.slow
def test_ad01_flash_image_on_the_virtual_pico_is_bit_exact_with_tflm(ad01):
    out, _ = ad01
    graph = load_tflite(AD01)
    x = np.random.default_rng(7).integers(-128, 128, (3, *graph.input.shape), dtype=np.int8)
    expected = tflm_run(AD01.read_bytes(), x).reshape(len(x), -1)
    with VirtualBoard(out / "firmware.uf2") as board, serial.Serial(board.port, 115200, timeout=0.2) as port:
        assert struct.unpack("<HH", call(port, CMD_INFO, timeout=60)) == (graph.input.size, graph.output.size)
        cycles = []
        for row, want in zip(x, expected, strict=True):
            body = call(port, CMD_INFER, row.tobytes(), timeout=120)
            assert np.array_equal(np.frombuffer(body[:-4], np.int8), want)
            cycles.append(struct.unpack("<I", body[-4:])[0])
        time.sleep(0.3)
        board.check()
        xip, misses = board.xip, list(board.xip_misses)
    # the emulator charged what boot2 configured: 03h serial reads at SCK = clk_sys / FLASH_CLKDIV
    assert xip == {"cycles": FLASH_CLKDIV * LINE_SCK_03H, "command": 3, "sck_divider": FLASH_CLKDIV,
                   "sck_per_line": LINE_SCK_03H}
    # 270 KB of weights: what is not staged in SRAM cannot stay in the 16 KB cache, so every inference
    # streams it from flash again
    weight_bytes = sum(layer.weights.size for layer in graph.layers if hasattr(layer, "weights"))
    assert len(misses) == 3 and min(misses) > (weight_bytes - STAGING_BUDGET - 16 * 1024) / 8
    assert all(c > m * xip["cycles"] for c, m in zip(cycles, misses, strict=True))


@pytest.fixture(scope="module")
def small_flash_image(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "pico"
    deploy(fc_graph(), out, kernels="dense", image="flash")
    return read_uf2((out / "firmware.uf2").read_bytes())


def board_error(tmp_path, blocks, boot2: bytes) -> str:
    """Boot a copy of the image whose first 256 bytes are ``boot2``; the virtual board's error."""
    path = tmp_path / "patched.uf2"
    path.write_bytes(write_uf2([(FLASH, boot2)] + [(b.address, b.data) for b in blocks[1:]]))
    with VirtualBoard(path) as board:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                board.check()
            except EmulatorError as exc:
                return str(exc)
            time.sleep(0.1)
    raise AssertionError("the virtual Pico kept running")


@pytest.mark.slow
def test_small_model_flash_image_boots_and_answers(small_flash_image, tmp_path):
    graph = fc_graph()
    path = tmp_path / "fw.uf2"
    path.write_bytes(write_uf2([(b.address, b.data) for b in small_flash_image]))
    x = np.random.default_rng(1).integers(-128, 128, (2, *graph.input.shape), dtype=np.int8)
    save_tflite(graph, tmp_path / "fc.tflite")
    expected = tflm_run((tmp_path / "fc.tflite").read_bytes(), x).reshape(len(x), -1)
    with VirtualBoard(path) as board, serial.Serial(board.port, 115200, timeout=0.2) as port:
        for row, want in zip(x, expected, strict=True):
            assert np.array_equal(np.frombuffer(call(port, CMD_INFER, row.tobytes())[:-4], np.int8), want)


@pytest.mark.slow
def test_virtual_bootrom_refuses_a_boot2_with_a_bad_crc(small_flash_image, tmp_path):
    bad = bytearray(small_flash_image[0].data)
    bad[20] ^= 1
    assert "boot2 checksum mismatch" in board_error(tmp_path, small_flash_image, bytes(bad))


@pytest.mark.slow
def test_a_boot2_that_leaves_the_ssi_unconfigured_faults_at_the_first_xip_read(small_flash_image, tmp_path):
    """Valid CRC, but the SSI is never re-enabled: the image's first instruction fetch from flash faults,
    as it would hang on a real chip, instead of the emulator reading flash like SRAM."""
    src = boot2_source()
    enable = "        movs    r0, #1\n        str     r0, [r3, #SSI_SSIENR]"
    assert src.count(enable) == 1
    broken = assemble(toolchain(), src.replace(enable, "        nop\n        nop"))
    assert crc_ok(broken)
    assert "SSI disabled" in board_error(tmp_path, small_flash_image, broken)


@pytest.mark.slow
def test_ad01_as_a_ram_image_is_refused_naming_sram_and_the_excess(tmp_path):
    refusal = r"as a ram image: it needs \d+ bytes of SRAM .*, \d+ more than the RP2040's 264 KB SRAM"
    with pytest.raises(FitError, match=refusal) as exc:
        deploy(load_tflite(AD01), tmp_path / "pico", image="ram")
    assert set(exc.value.over) == {"SRAM"} and exc.value.over["SRAM"] > 0
    assert not (tmp_path / "pico").exists()  # nothing useless written


def big_arena_graph() -> Graph:
    """10 KB in, 32 B out, but a 100x100x32 activation (320 KB) in between: fits the flash, not the SRAM."""
    mid, out = TensorInfo((100, 100, 32), 0.05, 0), TensorInfo((1, 1, 32), 0.05, 0)
    conv = Conv2D(np.ones((32, 1, 1, 1), np.int8), np.zeros(32, np.int32), np.full(32, 0.01, np.float32), (1, 1),
                  "SAME", Activation("NONE", -128, 127), mid)
    pool = Pool2D("MAX", (100, 100), (100, 100), "VALID", Activation("NONE", -128, 127), out)
    return Graph(TensorInfo((100, 100, 1), 0.05, 0), [conv, pool], name="big_arena")


@pytest.mark.slow
@pytest.mark.parametrize("graph, memory", [(fc_graph(1500, 1500), "flash, .* more than the Pico's 2 MB flash"),
                                           (big_arena_graph(), "SRAM .*, .* more than the RP2040's 264 KB SRAM")],
                         ids=["2.25 MB of weights", "320 KB activation"])
def test_deploy_refuses_what_no_image_fits_in_one_line(tmp_path, capsys, graph, memory):
    """With the default image (auto): the RAM image does not fit, and neither does the flash image."""
    save_tflite(graph, tmp_path / "big.tflite")
    assert main(["deploy", str(tmp_path / "big.tflite"), "--out", str(tmp_path / "pico")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.search(rf"as a flash image: it needs \d+ bytes of {memory}", err[0]), err[0]
    assert not (tmp_path / "pico").exists()
