"""MCU commands of the CLI (profile)."""

from __future__ import annotations

import argparse


def add_mcu_commands(sub: argparse._SubParsersAction) -> None:
    return None
