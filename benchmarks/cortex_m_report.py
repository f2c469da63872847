"""Per emulated Cortex-M core: instructions per inference, flash and RAM, and the accuracy on the full test
set computed from the firmware's own outputs under QEMU (not from PyTorch).

    python benchmarks/cortex_m_report.py runs/mcu_m4-mnist/model.pt --data-dir ../shared/data/mnist
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

from irnet_edge.codegen import write_tree
from irnet_edge.codegen.firmware import board_names, load_board, render_firmware
from irnet_edge.data import load_split
from irnet_edge.ir import export
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.verify.qemu import build_firmware, instructions_per_inference, run_elf, size_report

CORES = [(b, None) for b in board_names() if load_board(b).emulator] + [("mps2-an385", "cortex-m0plus")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir")
    parser.add_argument("--accuracy-board", default="mps2-an386", help="board whose firmware classifies the test set")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    graph = export(ckpt)
    dataset = ckpt.config["dataset"]
    test = load_split(dataset, "test", args.data_dir)
    inputs = test.images.permute(0, 2, 3, 1).contiguous().numpy()
    print(f"{args.checkpoint} ({graph.name}, {dataset})\n")
    print("| board | core | instructions per inference | flash bytes | RAM bytes (incl. 4 KiB stack) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for board_name, cpu in CORES:
            board = load_board(board_name)
            tree = Path(tmp) / f"{board_name}-{cpu}"
            files = render_firmware(graph, "model", ckpt.sha256, board, cpu, inputs[:8], test.labels[:8].numpy(),
                                    dataset)
            write_tree(files, tree, force=True)
            elf = build_firmware(tree)
            _, output = run_elf(board.emulator["machine"], elf, icount=True)
            count = instructions_per_inference(output, board.clock_hz)
            report = size_report(tree, board).splitlines()[1].split()
            print(f"| {board_name} | {cpu or board.cpu} | {count:,} | {report[1]} | {report[7]} |", flush=True)
            if board_name == args.accuracy_board and cpu is None:
                inputs.tofile(tree / "in.bin")
                rc, output = run_elf(board.emulator["machine"], elf, "in.bin out.bin", cwd=tree, timeout=3600)
                logits = np.fromfile(tree / "out.bin", dtype=np.float32).reshape(len(inputs), -1)
                accuracy = (logits.argmax(1) == test.labels.numpy()).mean()
                accuracy_line = (f"\naccuracy from the firmware's own outputs on {board_name} under QEMU: "
                                 f"{accuracy:.2%} of {len(inputs)} {dataset} test images")
    print(accuracy_line)


if __name__ == "__main__":
    main()
