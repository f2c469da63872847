"""Compile the generated C, run it on real inputs and compare bit for bit with the reference executor."""
