"""How long the command line takes to answer --help: the median wall time of `irnet-edge --help` and
`irnet-edge train --help` over N fresh processes (torch is imported only by the commands that need it).

    python benchmarks/cli_startup.py [--runs 10]
"""
import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["train", "--help"])


def median_seconds(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "irnet_edge.cli", *args], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per command")
    args = parser.parse_args()
    for command in COMMANDS:
        seconds = median_seconds(command, args.runs)
        print(f"irnet-edge {' '.join(command)}: median {seconds:.3f} s over {args.runs} runs")


if __name__ == "__main__":
    main()
