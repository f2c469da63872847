"""Maps the repository's top-level templates/ and firmware/ into the wheel as package data."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
SHIPPED = {"templates": "_templates", "firmware": "_firmware"}


class BuildWithAssets(build_py):
    def run(self):
        super().run()
        for src, dst in SHIPPED.items():
            target = Path(self.build_lib) / "irnet_edge" / dst
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(ROOT / src, target)


setup(cmdclass={"build_py": BuildWithAssets})
