"""C generation: targets, the static memory planner, and Jinja2 rendering of a deployment graph."""
from .render import check_prefix, default_prefix, render
from .targets import TARGETS, get_target
from .writer import check_out_dir, write_tree

__all__ = ["TARGETS", "check_out_dir", "check_prefix", "default_prefix", "get_target", "render", "write_tree"]
