"""Test-set accuracy computed from a board firmware's own outputs under QEMU (not from PyTorch): every test
image goes through the firmware in file mode and its logits decide the class.

    python benchmarks/firmware_accuracy.py runs/mcu_m4-mnist/model.pt --data-dir ../shared/data/mnist
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np

from irnet_edge.codegen import write_tree
from irnet_edge.codegen.firmware import load_board, render_firmware
from irnet_edge.data import load_split
from irnet_edge.ir import export
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.verify.qemu import build_firmware, run_elf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir")
    parser.add_argument("--board", default="mps2-an386", help="emulated board whose firmware classifies the test set")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    dataset = ckpt.config["dataset"]
    test = load_split(dataset, "test", args.data_dir)
    inputs = test.images.permute(0, 2, 3, 1).contiguous().numpy()
    board = load_board(args.board)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "fw"
        write_tree(render_firmware(export(ckpt), "model", ckpt.sha256, board, None, inputs[:8],
                                   test.labels[:8].numpy(), dataset), tree, force=True)
        elf = build_firmware(tree)
        inputs.tofile(tree / "in.bin")
        rc, output = run_elf(board.emulator["machine"], elf, "in.bin out.bin", cwd=tree, timeout=3600)
        if rc != 0:
            raise SystemExit(f"the firmware failed under QEMU:\n{output[-2000:]}")
        logits = np.fromfile(tree / "out.bin", dtype=np.float32).reshape(len(inputs), -1)
    accuracy = (logits.argmax(1) == test.labels.numpy()).mean()
    print(f"{args.checkpoint} ({ckpt.spec['name']}): accuracy from the firmware's own outputs on {args.board} "
          f"under QEMU: {accuracy:.2%} of {len(inputs)} {dataset} test images")


if __name__ == "__main__":
    main()
