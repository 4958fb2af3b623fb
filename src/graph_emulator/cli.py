"""Command line: `python -m graph_emulator --port PORT --data-dir DIR [--seed FILE] [--users N --groups M]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import seeds
from .runtime import Emulator
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="graph_emulator", description="Offline Microsoft identity + Graph emulator"
    )
    parser.add_argument("--port", type=int, default=0, help="HTTPS port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, required=True, help="where ca.pem and the server key go")
    parser.add_argument("--seed", type=Path, help="JSON seed file in Graph's shapes")
    parser.add_argument("--users", type=int, default=0, help="generate a tenant with this many users")
    parser.add_argument("--groups", type=int, default=0, help="... and this many groups")
    parser.add_argument("--time-scale", type=float, default=1.0, help="speed up throttling windows and lag")
    parser.add_argument("--no-throttling", action="store_true", help="turn the token buckets off")
    parser.add_argument("--faults", help="fault settings as JSON, e.g. '{\"rate_429\": 0.1}'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed:
        seed = json.loads(args.seed.read_text())
    elif args.users or args.groups:
        seed = seeds.generated_seed(args.users, args.groups)
    else:
        seed = seeds.default_seed()
    emu = Emulator(
        seed,
        time_scale=args.time_scale,
        throttling=not args.no_throttling,
        faults=json.loads(args.faults) if args.faults else None,
    )
    server = EmulatorServer(emu, args.data_dir, args.port)
    print(server.base_url, flush=True)
    print(f"CA certificate: {server.tls.ca_path}", file=sys.stderr, flush=True)
    server.run()
    return 0
