"""Performance and resource model of the engine, and design-space exploration (docs/estimator.md).

    estimate(graph, hw, batch=1, control="descriptor"|"per_layer", shuffle_on_cpu=False) -> FrameEstimate
    resources(hw) -> ResourceEstimate
    explore(graph, board="ultra96v2", ...) -> ExploreResult (.best: HardwareConfig)
    write_report(graph, hw, out_dir) -> {"json", "table", "roofline", "resources"} paths
"""
from .cycles import CONTROL_STYLES, CallEstimate, FrameEstimate, estimate
from .explore import Candidate, ExploreError, ExploreResult, explore, pareto_front, plot_pareto
from .params import (CODENET_RESOURCE_PARAMS, CODENET_TIMING, SYNETGY_RESOURCES, SYNETGY_TIMING, ModelParams,
                     ResourceParams, codenet_config, synetgy_config)
from .report import plot_resources, plot_roofline, roofline_data, write_report
from .resources import ResourceEstimate, resources
from .workload import Workload, workload

__all__ = ["CODENET_RESOURCE_PARAMS", "CODENET_TIMING", "CONTROL_STYLES", "codenet_config", "CallEstimate", "Candidate", "ExploreError", "ExploreResult", "FrameEstimate",
           "ModelParams", "ResourceEstimate", "ResourceParams", "SYNETGY_RESOURCES", "SYNETGY_TIMING", "Workload",
           "estimate", "explore", "pareto_front", "plot_pareto", "plot_resources", "plot_roofline", "resources",
           "roofline_data", "synetgy_config", "workload", "write_report"]
