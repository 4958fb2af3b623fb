"""Command line: `python -m graph_emulator --port PORT --data-dir DIR [--seed FILE] [--users N --groups M]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import seeds
from .fleet import fleet_seed
from .runtime import DEFAULT_LAG_SECONDS, Emulator
from .server import EmulatorServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="graph-emulator", description="Offline Microsoft identity + Graph emulator"
    )
    parser.add_argument("--port", type=int, default=0, help="HTTPS port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, required=True, help="where ca.pem and the server key go")
    parser.add_argument("--seed", type=Path, help="JSON seed file in Graph's shapes")
    parser.add_argument("--users", type=int, default=0, help="generate a tenant with this many users")
    parser.add_argument("--groups", type=int, default=0, help="... and this many groups")
    parser.add_argument(
        "--multi-tenant",
        action="store_true",
        help="the multi-tenant demo: the app's home tenant, Contoso (consented) and Fabrikam (not consented)",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="with --multi-tenant: a redirect URI registered for the app (repeatable; none: any is accepted)",
    )
    parser.add_argument(
        "--fleet",
        metavar="TENANTS,GROUPS,MEMBERSHIPS",
        help="a generated fleet for scale benches, e.g. 100,2000,400000 (tenants of sizes S/M/L)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="speed up throttling windows and lag")
    parser.add_argument("--no-throttling", action="store_true", help="turn the token buckets off")
    parser.add_argument(
        "--lag",
        type=float,
        default=DEFAULT_LAG_SECONDS,
        help=f"seconds before a Graph write is read back, divided by --time-scale (default {DEFAULT_LAG_SECONDS}; 0: at once)",
    )
    parser.add_argument("--faults", help="fault settings as JSON, e.g. '{\"rate_429\": 0.1}'")
    return parser.parse_args(argv)


class SeedFileError(Exception):
    """A --seed file that cannot be read, is not JSON, or does not have a seed's shape."""


def read_seed_file(path: Path) -> dict[str, Any]:
    """The seed in `path`, checked by loading it once, or SeedFileError with a one-line reason."""
    try:
        seed = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SeedFileError(f"cannot read seed file {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise SeedFileError(f"seed file {path} is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise SeedFileError(
            f"seed file {path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from error
    tenants = seed.get("tenants") if isinstance(seed, dict) else None
    if not isinstance(tenants, list) or not all(isinstance(tenant, dict) for tenant in tenants):
        raise SeedFileError(f'seed file {path} must hold a JSON object with a "tenants" list of objects')
    try:
        seeds.load_seed(seed)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        reason = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise SeedFileError(f"seed file {path} is not a valid seed: {reason}") from error
    return seed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seed:
        try:
            seed = read_seed_file(args.seed)
        except SeedFileError as error:
            print(f"graph_emulator: error: {error}", file=sys.stderr, flush=True)
            return 2
    elif args.fleet:
        try:
            tenants, groups, memberships = (int(part) for part in args.fleet.split(","))
        except ValueError:
            print(
                "graph_emulator: error: --fleet takes TENANTS,GROUPS,MEMBERSHIPS", file=sys.stderr, flush=True
            )
            return 2
        seed = fleet_seed(tenants, groups, memberships)
    elif args.multi_tenant:
        seed = seeds.multi_tenant_seed(args.redirect_uri)
    elif args.users or args.groups:
        seed = seeds.generated_seed(args.users, args.groups)
    else:
        seed = seeds.default_seed()
    emu = Emulator(
        seed,
        time_scale=args.time_scale,
        throttling=not args.no_throttling,
        faults=json.loads(args.faults) if args.faults else None,
        lag_seconds=args.lag,
    )
    server = EmulatorServer(emu, args.data_dir, args.port)
    print(server.base_url, flush=True)
    print(f"CA certificate: {server.tls.ca_path}", file=sys.stderr, flush=True)
    for tenant in emu.directory.tenants.values():
        for account in tenant.accounts.values():
            if account.admin:
                print(
                    f"{tenant.display_name} ({tenant.id}): administrator {account.user_principal_name} "
                    f"password {account.password}",
                    file=sys.stderr,
                    flush=True,
                )
    server.run()
    return 0
