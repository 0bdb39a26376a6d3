"""Run a compiled model on the engine: the PYNQ board, or a simulated device for CI.

- `registers`: the AXI-Lite register map, derived from the generated top function.
- `device`: one device interface; `PynqDevice` (pynq, imported lazily) and `SimulatedDevice`
  (the engine's C-simulation behind the same registers and buffers).
- `package`: the deploy package `codesign.deploy` writes, and its checks.
- `runtime`: `Runtime`, `run_images`, `benchmark`.
"""
