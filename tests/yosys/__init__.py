"""Verilog equivalents of the engine's arithmetic units, synthesised with Yosys (tests/test_yosys_units.py)."""
