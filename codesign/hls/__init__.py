"""HLS back end: the engine project (C++ sources, testbench, Tcl) and the vendor tool flow."""
