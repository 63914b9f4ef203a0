"""Serve one stand-in by hand: ``cd tests && python -m standins <api> [--port N] [--api-key K] [--n-results N]``."""
import argparse

from . import STANDINS

parser = argparse.ArgumentParser(description="Run a local stand-in (not the real API) until Ctrl-C.")
parser.add_argument("api", choices=sorted(STANDINS))
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--api-key", default=None)
parser.add_argument("--n-results", type=int, default=45)
args = parser.parse_args()
STANDINS[args.api](api_key=args.api_key, n_results=args.n_results).serve_until_interrupted(
    args.port, f"{args.api} stand-in")
