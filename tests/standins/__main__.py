"""Serve one stand-in by hand: ``cd tests && python -m standins <api> [--port N] [--api-key K] [--n-results N]``."""
import argparse
import time

from . import STANDINS

parser = argparse.ArgumentParser(description="Run a local stand-in (not the real API) until Ctrl-C.")
parser.add_argument("api", choices=sorted(STANDINS))
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--api-key", default=None)
parser.add_argument("--n-results", type=int, default=45)
args = parser.parse_args()
server = STANDINS[args.api](api_key=args.api_key, n_results=args.n_results).start(args.port)
print(f"{args.api} stand-in at {server.url}", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    server.stop()
